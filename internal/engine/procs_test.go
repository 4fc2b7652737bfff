package engine

import (
	"slices"
	"testing"
)

// Local workers split the coordinator's cores between them, unless the user chose GOMAXPROCS,
// which every worker then gets as it is.
func TestWorkerProcs(t *testing.T) {
	none := func(string) string { return "" }
	for _, c := range []struct {
		cores, workers int
		want           []string
	}{
		{2, 8, []string{"GOMAXPROCS=1"}},
		{2, 2, []string{"GOMAXPROCS=1"}},
		{2, 1, []string{"GOMAXPROCS=2"}},
		{16, 3, []string{"GOMAXPROCS=6"}},
		{1, 20, []string{"GOMAXPROCS=1"}},
	} {
		if got := workerProcs(none, c.cores, c.workers); !slices.Equal(got, c.want) {
			t.Errorf("%d cores, %d workers: %q, want %q", c.cores, c.workers, got, c.want)
		}
	}
	chosen := func(k string) string {
		if k == "GOMAXPROCS" {
			return "3"
		}
		return ""
	}
	if got := workerProcs(chosen, 2, 8); got != nil {
		t.Errorf("with GOMAXPROCS set: %q, want none added", got)
	}
	if env := workerEnv(chosen, false); !slices.Contains(env, "GOMAXPROCS=3") {
		t.Errorf("workerEnv %q does not pass the user's GOMAXPROCS", env)
	}
}
