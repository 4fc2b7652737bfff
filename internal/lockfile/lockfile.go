// Package lockfile holds a run folder's locks: an exclusive flock on a file that records the
// holder's PID. The kernel releases a lock when its process dies, however it dies, so a lock
// never outlives its holder and is never left behind by a crash. The coordinator holds one per
// run folder; each worker holds one per batch, so two workers (a hand-run one beside the
// coordinator's, or two scheduler tasks) never work on one batch.
package lockfile

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// ErrHeld means another live process holds the lock.
var ErrHeld = errors.New("lock held by another process")

// Lock is a held lock.
type Lock struct{ f *os.File }

// Acquire takes the lock at path without waiting. When another process holds it, the error
// wraps ErrHeld and holder is that process's PID ("unknown" if it wrote none).
func Acquire(path string) (l *Lock, holder string, err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, "", fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder := pidIn(f)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, holder, fmt.Errorf("lock %s: %w (pid %s)", path, ErrHeld, holder)
		}
		return nil, "", fmt.Errorf("lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{f: f}, "", nil
}

// Release lets the lock go. Safe on nil.
func (l *Lock) Release() {
	if l == nil {
		return
	}
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	l.f.Close()
}

// Holder is the PID of the live process holding the lock at path, or "" when none does.
func Holder(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err == nil {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return ""
	}
	return pidIn(f)
}

func pidIn(f *os.File) string {
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	if pid := strings.TrimSpace(string(b[:n])); pid != "" {
		return pid
	}
	return "unknown"
}
