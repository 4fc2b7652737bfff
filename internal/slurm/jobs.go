package slurm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/trialcat/trialcat/internal/safefile"
)

// Jobs is the run folder's record of what was submitted (slurm/jobs.json). It is written the
// moment sbatch answers, so a rerun knows every job; a job whose ID was lost to a crash between
// sbatch and the write is still found by its name.
type Jobs struct {
	// Name is the job name every submission of the run carries.
	Name string `json:"name"`
	Jobs []Job  `json:"jobs"` // oldest first
}

// Job is one submission.
type Job struct {
	ID          string    `json:"id"`
	Batches     []int     `json:"batches"`
	SubmittedAt time.Time `json:"submitted_at"`
}

// LoadJobs reads path; a missing file is an empty record.
func LoadJobs(path string) (*Jobs, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &Jobs{Jobs: []Job{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the Slurm job record: %w", err)
	}
	var j Jobs
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, fmt.Errorf("%s is damaged (%w); the jobs it named can be listed with squeue --me and cancelled with scancel", path, err)
	}
	return &j, nil
}

// Save writes the record atomically.
func (j *Jobs) Save(path string) error {
	if err := safefile.WriteJSON(path, j); err != nil {
		return fmt.Errorf("record the Slurm job: %w", err)
	}
	return nil
}

// IDs lists the recorded job IDs, oldest first.
func (j *Jobs) IDs() []string {
	ids := make([]string, len(j.Jobs))
	for i, job := range j.Jobs {
		ids[i] = job.ID
	}
	return ids
}

// Last is the newest submission, or nil.
func (j *Jobs) Last() *Job {
	if len(j.Jobs) == 0 {
		return nil
	}
	return &j.Jobs[len(j.Jobs)-1]
}

// Adopt records the jobs among ids that the record lacks (found by the run's name: submitted by
// hand, or by a run that crashed before writing the ID), with the batches board shows them
// running, and returns their IDs.
func (j *Jobs) Adopt(ids []string, board Board, at time.Time) []string {
	known := map[string]bool{}
	for _, id := range j.IDs() {
		known[id] = true
	}
	var added []string
	for _, id := range ids {
		if known[id] {
			continue
		}
		var batches []int
		for n, s := range board {
			if s.Job == id {
				batches = append(batches, n)
			}
		}
		sort.Ints(batches)
		j.Jobs = append(j.Jobs, Job{ID: id, Batches: batches, SubmittedAt: at})
		added = append(added, id)
	}
	return added
}

// Board is the newest Slurm state of each batch's task over every job of a run.
type Board map[int]State

// Active lists the batches whose task may still run, in order.
func (b Board) Active() []int { return b.where(State.Active) }

// Running lists the batches whose task is running now, in order.
func (b Board) Running() []int { return b.where(func(s State) bool { return s.State == "RUNNING" }) }

// Batches lists every batch on the board, in order.
func (b Board) Batches() []int { return b.where(func(State) bool { return true }) }

func (b Board) where(keep func(State) bool) []int {
	var out []int
	for n, s := range b {
		if keep(s) {
			out = append(out, n)
		}
	}
	sort.Ints(out)
	return out
}

// Count tallies the states: "RUNNING" → 3.
func (b Board) Count() map[string]int {
	c := map[string]int{}
	for _, s := range b {
		c[s.State]++
	}
	return c
}

// Look asks Slurm for the tasks of every job of the run (the recorded ones, and any carrying its
// name) and keeps, per batch, the task of the newest job that ran it. Jobs Slurm has forgotten
// add nothing.
func Look(ctx context.Context, r Runner, j *Jobs) (Board, []string, error) {
	ids := j.IDs()
	if j.Name != "" {
		named, err := JobsNamed(ctx, r, j.Name)
		if err != nil {
			return nil, nil, err
		}
		ids = union(ids, named)
	}
	b := Board{}
	for _, id := range ids {
		tasks, err := Tasks(ctx, r, id)
		if err != nil {
			return nil, nil, err
		}
		for _, t := range tasks {
			// Later jobs (higher IDs) replace earlier ones: a resubmitted batch shows its
			// newest task.
			if old, ok := b[t.Task]; !ok || newer(t.Job, old.Job) || old.Job == t.Job {
				b[t.Task] = t
			}
		}
	}
	return b, ids, nil
}

func newer(a, b string) bool {
	if len(a) != len(b) {
		return len(a) > len(b)
	}
	return a > b
}

func union(a, b []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range append(append([]string{}, a...), b...) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, k int) bool { return newer(out[k], out[i]) })
	return out
}
