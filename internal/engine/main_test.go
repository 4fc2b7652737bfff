package engine_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"

	"github.com/trialcat/trialcat/internal/testkit"
)

// binDir holds coordinator, worker and fakeai binaries built once for the end-to-end tests.
var binDir string

func TestMain(m *testing.M) {
	// Started by an in-process test's coordinator as its worker: be that worker.
	if len(os.Args) > 1 && os.Args[1] == "--serve" {
		os.Exit(fakeWorkerMain(os.Args[1:]))
	}
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	flag.Parse()
	// The Slurm tests talk to the private cluster of scripts/slurm-local.sh (its own
	// slurm.conf, ports and munge), never to a Slurm installation of the machine's.
	if os.Getenv("SLURM_CONF") == "" {
		dir := os.Getenv("SLURM_LOCAL_DIR")
		if dir == "" {
			dir = "/var/tmp/trialcat-slurm"
		}
		os.Setenv("SLURM_CONF", filepath.Join(dir, "etc", "slurm.conf"))
	}
	if testing.Short() {
		// The in-process tests need no binaries; the end-to-end tests skip.
		code := m.Run()
		if err := goleak.Find(); code == 0 && err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left running:", err)
			code = 1
		}
		return code
	}
	dir, err := os.MkdirTemp("", "trialcat-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := testkit.Build(dir, testkit.Race, "../../cmd/coordinator", "../../cmd/worker", "../../cmd/fakeai", "../../cmd/interventions-mcp"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	binDir = dir
	code := m.Run()
	if code == 0 {
		// The engine's goroutines (the scheduler's slots, the split, the merger, the watchers)
		// end with each run: none may outlive the tests.
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left running:", err)
			code = 1
		}
	}
	return code
}

// needBinaries skips an end-to-end test under -short, where the binaries are not built.
func needBinaries(t testing.TB) {
	t.Helper()
	if binDir == "" {
		t.Skip("end-to-end test: runs the built binaries, not built with -short")
	}
}
