package coordinator

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/trialcat/trialcat/internal/rundir"
)

// The run lock (rundir's Lock) is held (flock) by the coordinator for the whole run, so two runs
// never write into one folder and `status` can tell a live run from a finished one.

type lock struct{ f *os.File }

// acquireLock takes the run lock of out, or says who holds it.
func acquireLock(dir rundir.Dir) (*lock, error) {
	out := dir.Path()
	f, err := os.OpenFile(dir.Lock(), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", out, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder := lockHolder(f)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, usagef("another coordinator (pid %s) is running on %s; wait for it, stop it, or use another --out (watch it with: coordinator status --out %s)", holder, out, out)
		}
		return nil, fmt.Errorf("lock %s: %w", out, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &lock{f: f}, nil
}

func (l *lock) release() {
	if l == nil {
		return
	}
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	l.f.Close()
}

// runningPID reports the PID of a live coordinator holding out's lock, or "" when none does.
func runningPID(dir rundir.Dir) string {
	f, err := os.Open(dir.Lock())
	if err != nil {
		return ""
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err == nil {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return ""
	}
	return lockHolder(f)
}

func lockHolder(f *os.File) string {
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	if pid := strings.TrimSpace(string(b[:n])); pid != "" {
		return pid
	}
	return "unknown"
}
