//go:build !unix

package proc

import (
	"os"
	"syscall"
)

// sysProcAttr has nothing to set on this system.
func sysProcAttr() *syscall.SysProcAttr { return nil }

// terminate kills the process: there is no SIGTERM on this system.
func terminate(p *os.Process) error { return p.Kill() }

// signalName is always "": processes here are not ended by signals.
func signalName(*os.ProcessState) string { return "" }

// maxRSSKB is unknown here.
func maxRSSKB(*os.ProcessState) int64 { return 0 }
