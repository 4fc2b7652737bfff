package exitcode

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// Scripts and schedulers act on these numbers; the table is the README's.
func TestCodesAreWhatScriptsActOn(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("batch 3: %w", err) }
	tests := []struct {
		name        string
		err         error
		coordinator int
		worker      int
	}{
		{"success", nil, 0, 0},
		{"records failed", wrap(ErrRecordsFailed), 1, 1},
		{"usage", wrap(ErrUsage), 2, 2},
		{"interrupted", wrap(ErrInterrupted), 130, 130},
		{"context canceled", wrap(context.Canceled), 130, 130},
		{"the API refused the run", Refused("invalid key"), 1, 3},
		{"a full disk", StorageFailed("no space left on device"), 1, 4},
		{"budget", wrap(ErrBudget), 1, 1},
		{"anything else", errors.New("boom"), 1, 1},
		// Usage wins over what it wraps: a usage error is never retried.
		{"usage around a refusal", fmt.Errorf("%w: %w", Refused("x"), ErrUsage), 2, 3},
	}
	for _, tt := range tests {
		if got := Code(tt.err); got != tt.coordinator {
			t.Errorf("%s: Code = %d, want %d", tt.name, got, tt.coordinator)
		}
		if got := WorkerCode(tt.err); got != tt.worker {
			t.Errorf("%s: WorkerCode = %d, want %d", tt.name, got, tt.worker)
		}
	}
}

func TestSentenceErrorsReadAsTheirMessage(t *testing.T) {
	err := StorageFailed("no space left on device writing worker_2_results.csv")
	if err.Error() != "no space left on device writing worker_2_results.csv" {
		t.Errorf("message %q carries more than the sentence", err)
	}
	if !errors.Is(fmt.Errorf("stop: %w", err), ErrStorage) || errors.Is(err, ErrFatalAPI) {
		t.Error("StorageFailed is not ErrStorage alone")
	}
	if r := Refused("bad key"); !errors.Is(r, ErrFatalAPI) || errors.Is(r, ErrStorage) {
		t.Error("Refused is not ErrFatalAPI alone")
	}
}
