package engine

import (
	"errors"

	"github.com/trialcat/trialcat/internal/lockfile"
	"github.com/trialcat/trialcat/internal/rundir"
)

// The run lock (rundir's Lock) is held by the coordinator for the whole run, so two runs never
// write into one folder and `status` can tell a live run from a finished one.

// acquireLock takes the run lock of dir, or says who holds it.
func acquireLock(dir rundir.Dir) (*lockfile.Lock, error) {
	l, holder, err := lockfile.Acquire(dir.Lock())
	if errors.Is(err, lockfile.ErrHeld) {
		out := dir.Path()
		return nil, usagef("another coordinator (pid %s) is running on %s; wait for it, stop it, or use another --out (watch it with: coordinator status --out %s)", holder, out, out)
	}
	return l, err
}

// runningPID reports the PID of a live coordinator holding dir's lock, or "" when none does.
func runningPID(dir rundir.Dir) string { return lockfile.Holder(dir.Lock()) }
