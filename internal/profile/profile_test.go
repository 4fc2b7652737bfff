package profile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TRIALCAT_PPROF names a folder; each process writes its own pair of profiles there, and an
// explicit path wins over it.
func TestProfilesAreWrittenWhereAsked(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "prof")
	o := Options{}.WithEnv(func(k string) string { return map[string]string{EnvDir: dir}[k] }, "worker")
	if !strings.HasPrefix(o.CPU, filepath.Join(dir, "worker-")) || !strings.HasSuffix(o.Mem, ".mem.pprof") {
		t.Fatalf("paths %+v", o)
	}
	if got := (Options{CPU: "/x.cpu"}).WithEnv(func(string) string { return dir }, "w"); got.CPU != "/x.cpu" {
		t.Errorf("an explicit path was replaced: %+v", got)
	}
	stop, err := Start(o)
	if err != nil {
		t.Fatal(err)
	}
	s := 0
	for i := range 2_000_000 {
		s += i % 7
	}
	_ = s
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{o.CPU, o.Mem} {
		if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", p, err)
		}
	}
	if got := (Options{}).WithEnv(func(string) string { return "" }, "w"); got != (Options{}) {
		t.Errorf("without TRIALCAT_PPROF a profile is asked for: %+v", got)
	}
}
