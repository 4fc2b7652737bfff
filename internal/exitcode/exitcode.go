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
	// Storage is the worker's code when it cannot write its files (a full disk, a read-only or
	// failing file system): retrying elsewhere may help, here it will not. The coordinator
	// exits 1.
	Storage = 4
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
	// ErrStorage marks a run stopped because its files could not be written: exit 1 (4 for a
	// worker).
	ErrStorage = errors.New("cannot write the run's files")
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
	switch {
	case errors.Is(err, ErrFatalAPI):
		return FatalAPI
	case errors.Is(err, ErrStorage):
		return Storage
	}
	return Code(err)
}

// Refused returns an error that reads msg and is ErrFatalAPI: the message says what the API
// refused and what to check, without the sentinel's words repeated after it.
func Refused(msg string) error { return sentenceError{msg, ErrFatalAPI} }

// Incomplete returns an error that reads msg and is ErrRecordsFailed: msg says how many records
// failed or are not done, never "some records failed" when none failed.
func Incomplete(msg string) error { return sentenceError{msg, ErrRecordsFailed} }

// StorageFailed returns an error that reads msg and is ErrStorage.
func StorageFailed(msg string) error { return sentenceError{msg, ErrStorage} }

// sentenceError reads as its message alone and is its sentinel.
type sentenceError struct {
	msg  string
	kind error
}

func (e sentenceError) Error() string        { return e.msg }
func (e sentenceError) Is(target error) bool { return target == e.kind }
