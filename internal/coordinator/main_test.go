package coordinator_test

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
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
	if testing.Short() {
		// The in-process tests need no binaries; the end-to-end tests skip.
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "trialcat-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "../../cmd/coordinator", "../../cmd/worker", "../../cmd/fakeai")
	cmd := exec.Command("go", args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build binaries:", err)
		return 1
	}
	binDir = dir
	return m.Run()
}

// needBinaries skips an end-to-end test under -short, where the binaries are not built.
func needBinaries(t testing.TB) {
	t.Helper()
	if binDir == "" {
		t.Skip("end-to-end test: runs the built binaries, not built with -short")
	}
}
