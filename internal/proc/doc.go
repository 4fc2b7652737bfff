// Package proc starts, supervises and stops one child process, in the manner of go-plugin's
// runner: an argv slice and an explicit environment (never a shell, never the parent's environment
// by accident), stdout and stderr read line by line until drained, a graceful stop (SIGTERM) that
// turns into a hard one (SIGKILL) after a grace period, and the child's exit status reported
// rather than pipe noise.
//
// # Logs and events
//
// Each stderr line that is a JSON object, as zerolog writes ({"level":"info","time":...,
// "message":"...", other fields}), is re-logged to Spec.Logger.Named(Spec.Name) at the matching
// hclog level, with the other fields as key/value pairs in their original order. Any other line,
// such as a Go panic trace or a C library warning, is logged verbatim at Error level so it stays
// visible. Each stdout line goes to Spec.OnStdout (the worker's JSON events).
//
// # Children do not outlive the parent
//
// On Linux the child is started with Pdeathsig SIGTERM: the kernel sends it SIGTERM when the parent
// dies, even by SIGKILL. Strictly, the signal fires when the OS thread that started the child
// exits, not the process (golang/go#27505). The Go runtime never retires a thread unless a
// goroutine exits while locked to it with runtime.LockOSThread, so callers must not call Start from
// a goroutine that locks its thread. On other systems there is no such signal; a child that must
// not outlive its parent can set Spec.Stdin and exit when its stdin reaches EOF, which happens
// when the parent dies.
//
// # Terminal signals
//
// The child runs in its own process group (Setpgid), so a Ctrl-C at the terminal reaches only the
// parent, which then stops its children itself with Stop: each child gets one SIGTERM, not two.
package proc
