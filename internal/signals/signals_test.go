package signals

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"
)

func TestFirstSignalCancelsSecondStopsHard(t *testing.T) {
	ctx, hard, stop := Context(context.Background())
	defer stop()
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("first SIGTERM did not cancel the context")
	}
	if !errors.Is(context.Cause(ctx), ErrSignal) {
		t.Errorf("cause = %v, want ErrSignal", context.Cause(ctx))
	}
	select {
	case <-hard:
		t.Fatal("hard stop after one signal")
	default:
	}
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-hard:
	case <-time.After(10 * time.Second):
		t.Fatal("second signal did not close the hard-stop channel")
	}
}
