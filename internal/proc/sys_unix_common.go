//go:build unix

package proc

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// terminate asks the process to stop.
func terminate(p *os.Process) error { return p.Signal(syscall.SIGTERM) }

// signalName returns the name of the signal that ended the process ("SIGKILL"), or "" if it
// exited normally.
func signalName(state *os.ProcessState) string {
	ws, ok := state.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() {
		return ""
	}
	if name := unix.SignalName(ws.Signal()); name != "" {
		return name
	}
	return ws.Signal().String()
}
