package exitcode

import (
	"context"
	"errors"
)

// Exit codes shared by coordinator and worker.
const (
	OK          = 0   // every record succeeded
	Failed      = 1   // some records failed, a worker failed, or the run was stopped by the API
	Usage       = 2   // bad flags or bad input; nothing was written
	Interrupted = 130 // stopped by SIGINT or SIGTERM
	// FatalAPI is the worker's code when the API refused the run (bad key, no quota): retrying
	// the same batch will not help. The coordinator exits 1 in that case.
	FatalAPI = 3
)

// Sentinel errors. Wrap them with fmt.Errorf("...: %w", ErrX) so Code can find them.
var (
	// ErrUsage marks a mistake in flags, input or configuration: exit 2.
	ErrUsage = errors.New("usage error")
	// ErrRecordsFailed marks a run that finished but left records failed or undone: exit 1.
	ErrRecordsFailed = errors.New("some records failed")
	// ErrFatalAPI marks an API answer that retrying cannot fix (bad key, no quota): exit 1.
	ErrFatalAPI = errors.New("the API refused the run")
	// ErrBudget marks a run stopped because --max-cost was reached: exit 1.
	ErrBudget = errors.New("budget reached")
	// ErrInterrupted marks a run stopped by a signal: exit 130.
	ErrInterrupted = errors.New("interrupted")
)

// Code maps an error returned by a run function to the process exit code.
func Code(err error) int {
	switch {
	case err == nil:
		return OK
	case errors.Is(err, ErrUsage):
		return Usage
	case errors.Is(err, ErrInterrupted), errors.Is(err, context.Canceled):
		return Interrupted
	default:
		return Failed
	}
}

// WorkerCode maps an error returned by a worker's run to the worker process's exit code: Code,
// except FatalAPI when the API refused the run. Schedulers act on it (see the README's exit codes).
func WorkerCode(err error) int {
	if errors.Is(err, ErrFatalAPI) {
		return FatalAPI
	}
	return Code(err)
}

// Refused returns an error that reads msg and is ErrFatalAPI: the message says what the API
// refused and what to check, without the sentinel's words repeated after it.
func Refused(msg string) error { return refusedError(msg) }

type refusedError string

func (e refusedError) Error() string        { return string(e) }
func (e refusedError) Is(target error) bool { return target == ErrFatalAPI }
