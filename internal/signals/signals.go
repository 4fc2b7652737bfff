package signals

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// ErrSignal is the cancellation cause recorded when a signal stops the program.
var ErrSignal = errors.New("stopped by signal")

// Context returns a context cancelled (with cause ErrSignal) by the first SIGINT or SIGTERM, and
// a channel closed by the second. stop releases the signal handler.
func Context(parent context.Context) (ctx context.Context, hardStop <-chan struct{}, stop func()) {
	ctx, cancel := context.WithCancelCause(parent)
	hard := make(chan struct{})
	ch := make(chan os.Signal, 2)
	// SIGHUP (a closed ssh session or terminal) stops gracefully, like SIGTERM.
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	// A closed stdout or stderr (`coordinator ... | head`) must not kill the run: with SIGPIPE
	// notified (and the notices dropped) a write to a closed pipe fails with EPIPE instead. Not
	// ignored: an ignored signal would be inherited by the children.
	pipe := make(chan os.Signal, 1)
	signal.Notify(pipe, syscall.SIGPIPE)
	done := make(chan struct{})
	go func() {
		n := 0
		for {
			select {
			case sig := <-ch:
				n++
				if n == 1 {
					cancel(fmt.Errorf("%w %s", ErrSignal, sig))
				} else {
					close(hard)
					return
				}
			case <-done:
				return
			}
		}
	}()
	return ctx, hard, func() {
		signal.Stop(ch)
		signal.Stop(pipe)
		close(done)
		cancel(nil)
	}
}
