//go:build linux

package proc

import "syscall"

// sysProcAttr puts the child in its own process group and has the kernel send it SIGTERM when the
// parent dies (see the package documentation for the thread caveat, golang/go#27505).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
