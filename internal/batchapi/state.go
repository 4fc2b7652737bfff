// Package batchapi is the record a worker keeps of its Batch API work, worker_N_batchapi.json:
// every input file it wrote, the file ID the upload returned and the batch created over it,
// each written the moment it exists. The worker drives the batches; the coordinator reads the
// record to show progress and to cancel them.
package batchapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/trialcat/trialcat/internal/exitcode"
	"github.com/trialcat/trialcat/internal/safefile"
)

// Part is one input file and its batch.
type Part struct {
	Part        int       `json:"part"`
	File        string    `json:"file"` // base name of the input file in the run folder
	Requests    int       `json:"requests"`
	Bytes       int64     `json:"bytes"`
	InputFileID string    `json:"input_file_id,omitempty"`
	BatchID     string    `json:"batch_id,omitempty"`
	Status      string    `json:"status,omitempty"`
	Completed   int64     `json:"completed,omitempty"` // request_counts at the last poll
	Failed      int64     `json:"failed,omitempty"`
	Collected   bool      `json:"collected,omitempty"`
	Note        string    `json:"note,omitempty"`
	PreparedAt  time.Time `json:"prepared_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// Open reports whether the part's batch exists and has not been collected: it may still run
// at the API.
func (p Part) Open() bool { return p.BatchID != "" && !p.Collected }

// State is worker_N_batchapi.json.
type State struct {
	Parts []Part `json:"parts"`
}

// Load reads path; a missing file is an empty state.
func Load(path string) (*State, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &State{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Base(path), err)
	}
	var st State
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("%s is damaged (%v): it records the batches submitted for this worker; "+
			"list them with the API's GET /v1/batches before removing it: %w", filepath.Base(path), err, exitcode.ErrUsage)
	}
	return &st, nil
}

// Save writes the state atomically.
func (st *State) Save(path string) error { return safefile.WriteJSON(path, st) }
