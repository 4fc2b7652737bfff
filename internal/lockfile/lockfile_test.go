package lockfile

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/trialcat/trialcat/internal/testkit"
)

func TestLockIsExclusiveAndNamesItsHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".lock")
	l, _, err := Acquire(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := Holder(path); got != strconv.Itoa(os.Getpid()) {
		t.Errorf("Holder = %q; want this process", got)
	}
	// A second open file description conflicts, as another process's would.
	if _, holder, err := Acquire(path); !errors.Is(err, ErrHeld) || holder != strconv.Itoa(os.Getpid()) {
		t.Errorf("second Acquire = %v, holder %q; want ErrHeld naming this process", err, holder)
	}
	l.Release()
	if got := Holder(path); got != "" {
		t.Errorf("Holder after Release = %q; want none", got)
	}
	l2, _, err := Acquire(path)
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	l2.Release()
}

func TestLockDiesWithItsHolder(t *testing.T) {
	// flock(1) holds the lock in a child that is then killed: the kernel lets it go.
	flock, err := exec.LookPath("flock")
	if err != nil {
		testkit.Need(t, "flock(1) is not installed (util-linux)")
	}
	path := filepath.Join(t.TempDir(), ".lock")
	// -o: only flock itself holds the file; its sleeping child does not.
	cmd := exec.Command(flock, "-o", "-x", path, "sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for Holder(path) == "" {
		if time.Now().After(deadline) {
			t.Fatal("the child never held the lock")
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // flock and its sleep
	_ = cmd.Wait()
	// Wait reaps flock only: a child it forked in the moment before it closed its copy of the
	// descriptor may still be exiting, and the kernel lets the lock go when the last copy goes.
	deadline = time.Now().Add(10 * time.Second)
	for {
		l, _, err := Acquire(path)
		if err == nil {
			l.Release()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Acquire 10 s after the holder was killed: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
