package worker

import (
	"context"
	"fmt"

	"github.com/trialcat/trialcat/internal/exitcode"
	"github.com/trialcat/trialcat/internal/runspec"
)

// mode is what a worker does with its batch once it holds it: ask the live API record by record,
// drive the Batch API, write the requests for another tool (export), or read another tool's
// answers (import). runOne sets every batch up the same way (the lock, the log, the runner, the
// permits) and hands it to the batch's mode.
type mode interface {
	// sends reports whether the mode sends requests, so that the API key is needed.
	sends() bool
	run(ctx context.Context, r *runner, cancel context.CancelCauseFunc) error
}

// modeOf is the mode of a batch: --export and --import first, then run.json's backend.
func modeOf(opts Options, spec *runspec.Spec) mode {
	switch {
	case opts.Export != "":
		return exportMode{path: opts.Export}
	case opts.Import != "":
		return importMode{path: opts.Import}
	case spec.IsBatchAPI():
		return batchAPIMode{}
	}
	return liveMode{}
}

// liveMode asks the run's provider record by record, --concurrency at a time.
type liveMode struct{}

func (liveMode) sends() bool { return true }

func (liveMode) run(ctx context.Context, r *runner, cancel context.CancelCauseFunc) error {
	if err := r.skipInFlight(); err != nil {
		return err
	}
	return r.run(ctx, cancel)
}

// batchAPIMode drives the batch through the OpenAI Batch API (see batchapi.go).
type batchAPIMode struct{}

func (batchAPIMode) sends() bool { return true }

func (batchAPIMode) run(ctx context.Context, r *runner, _ context.CancelCauseFunc) error {
	return r.runBatchAPI(ctx, r.batchAPI, r.openai)
}

// exportMode writes the batch's requests not done yet in the Batch API's input format.
type exportMode struct{ path string }

func (exportMode) sends() bool { return false }

func (m exportMode) run(ctx context.Context, r *runner, _ context.CancelCauseFunc) error {
	if err := needOpenAI(r); err != nil {
		return err
	}
	return r.exportRequests(ctx, m.path)
}

// importMode reads answers in the Batch API's output format into the batch's results, priced
// at Batch API rates.
type importMode struct{ path string }

func (importMode) sends() bool { return false }

func (m importMode) run(ctx context.Context, r *runner, _ context.CancelCauseFunc) error {
	if err := needOpenAI(r); err != nil {
		return err
	}
	return r.importAnswers(ctx, m.path)
}

func needOpenAI(r *runner) error {
	if r.openai == nil {
		return fmt.Errorf("export and import need a run with provider openai (this one's is %s): %w", r.spec.Provider, exitcode.ErrUsage)
	}
	return nil
}
