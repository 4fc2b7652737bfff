// Package slurm runs a split run's workers as a Slurm job array: it writes the array's batch
// script, submits it with sbatch, keeps the job IDs in the run folder, and reads the state of
// each array task back from scontrol. It knows Slurm's commands and their output; what to
// submit and when is the coordinator's decision.
//
// One array task is one worker over one batch: task N runs `worker --run-dir DIR`, which reads
// N from SLURM_ARRAY_TASK_ID. The API key is never written anywhere: sbatch exports the
// submitting environment to the tasks (its default, --export=ALL).
package slurm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Runner runs one Slurm command and returns its standard output. Tests replace it; Exec runs
// the real command.
type Runner interface {
	Run(ctx context.Context, name string, args ...string) ([]byte, error)
}

// Exec runs Slurm's commands as child processes, with Env as their whole environment (sbatch
// passes it on to the tasks).
type Exec struct {
	Env []string
}

// Run runs name with args, waits for it and returns its standard output; a failure carries the
// command's standard error.
func (e Exec) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	path, err := e.lookPath(name)
	if err != nil {
		return nil, fmt.Errorf("%s is not on PATH: run this on a Slurm login node (or install Slurm's client commands): %w", name, ErrNoSlurm)
	}
	cmd := exec.CommandContext(ctx, path, args...) //nolint:gosec // Slurm's own command from PATH, with an argv slice
	cmd.Env = e.Env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return out, fmt.Errorf("%s %s: %s: %w", name, strings.Join(args, " "), msg, err)
	}
	return out, nil
}

// lookPath finds name on the PATH of Env (the PATH the tasks get too), or on this process's
// when Env has none.
func (e Exec) lookPath(name string) (string, error) {
	for i := len(e.Env) - 1; i >= 0; i-- {
		if dirs, ok := strings.CutPrefix(e.Env[i], "PATH="); ok {
			for _, d := range filepath.SplitList(dirs) {
				p := filepath.Join(d, name)
				if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
					return p, nil
				}
			}
			return "", exec.ErrNotFound
		}
	}
	return exec.LookPath(name)
}

// ErrNoSlurm means Slurm's commands are not installed here.
var ErrNoSlurm = errors.New("slurm is not available")

// Submit runs sbatch --parsable on script, with extra arguments before it (such as an --array
// that overrides the script's), and returns the job ID.
func Submit(ctx context.Context, r Runner, script string, args ...string) (string, error) {
	argv := append(append([]string{"--parsable"}, args...), script)
	out, err := r.Run(ctx, "sbatch", argv...)
	if err != nil {
		return "", err
	}
	return ParseJobID(out)
}

// ParseJobID reads sbatch --parsable's answer: "ID" or "ID;CLUSTER".
func ParseJobID(out []byte) (string, error) {
	s := strings.TrimSpace(string(out))
	if i := strings.IndexByte(s, ';'); i >= 0 {
		s = s[:i]
	}
	if _, err := strconv.ParseUint(s, 10, 64); err != nil {
		return "", fmt.Errorf("sbatch answered %q, not a job ID", strings.TrimSpace(string(out)))
	}
	return s, nil
}

// Cancel runs scancel on job IDs.
func Cancel(ctx context.Context, r Runner, jobs ...string) error {
	if len(jobs) == 0 {
		return nil
	}
	_, err := r.Run(ctx, "scancel", jobs...)
	return err
}

// State is what Slurm says of one array task.
type State struct {
	Job   string // the array's job ID
	Task  int    // the array index: the batch number
	State string // PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMEOUT, ...
	// ExitCode is the task's exit status, and Signal the signal that ended it (0 for none),
	// once it has ended.
	ExitCode, Signal int
}

// Active reports whether the task may still run: it is queued, running or being requeued.
func (s State) Active() bool {
	switch s.State {
	case "PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
		"RESIZING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT", "RESV_DEL_HOLD":
		return true
	}
	return false
}

// String is a short description: "RUNNING", "FAILED (exit 3)", "CANCELLED (signal 9)".
func (s State) String() string {
	switch {
	case s.Active() || s.State == "COMPLETED":
		return s.State
	case s.Signal != 0:
		return fmt.Sprintf("%s (signal %d)", s.State, s.Signal)
	default:
		return fmt.Sprintf("%s (exit %d)", s.State, s.ExitCode)
	}
}

// Tasks asks Slurm for the state of every task of the array job. A job Slurm no longer knows
// (ended longer ago than its MinJobAge) has no tasks.
func Tasks(ctx context.Context, r Runner, job string) ([]State, error) {
	out, err := r.Run(ctx, "scontrol", "-o", "show", "job", job)
	if err != nil {
		if strings.Contains(err.Error(), "Invalid job id") {
			return nil, nil
		}
		return nil, err
	}
	return ParseJobs(job, out)
}

// ParseJobs reads `scontrol -o show job` (one line per job record, fields Key=Value separated by
// spaces). Pending tasks of an array are one record whose ArrayTaskId is a list of ranges
// ("3,5-9%2"); each becomes one State.
func ParseJobs(job string, out []byte) ([]State, error) {
	var states []State
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		f := fields(line)
		if f["ArrayJobId"] != job && f["JobId"] != job {
			continue
		}
		st := State{Job: job, State: strings.SplitN(f["JobState"], " ", 2)[0]}
		if code, sig, ok := strings.Cut(f["ExitCode"], ":"); ok {
			st.ExitCode, _ = strconv.Atoi(code)
			st.Signal, _ = strconv.Atoi(sig)
		}
		ids, err := ParseIndices(f["ArrayTaskId"])
		if err != nil {
			return nil, fmt.Errorf("scontrol show job %s: %w", job, err)
		}
		for _, id := range ids {
			s := st
			s.Task = id
			states = append(states, s)
		}
	}
	sort.Slice(states, func(i, j int) bool { return states[i].Task < states[j].Task })
	return states, nil
}

// fields splits one scontrol -o line into its Key=Value pairs. Values hold no spaces except a
// few free-text fields (Command, WorkDir with spaces, Comment); those are not read here.
func fields(line string) map[string]string {
	m := map[string]string{}
	for _, kv := range strings.Fields(line) {
		if k, v, ok := strings.Cut(kv, "="); ok {
			if _, seen := m[k]; !seen {
				m[k] = v
			}
		}
	}
	return m
}

// ParseIndices reads an array index list: "7", "0-9", "1,3,5-7", each optionally followed by
// "%K" (the throttle) or ":S" (a step). An empty list is no index.
func ParseIndices(s string) ([]int, error) {
	if i := strings.IndexByte(s, '%'); i >= 0 {
		s = s[:i]
	}
	s = strings.Trim(s, "[]")
	if s == "" || s == "(null)" {
		return nil, nil
	}
	var out []int
	for _, part := range strings.Split(s, ",") {
		step := 1
		if r, st, ok := strings.Cut(part, ":"); ok {
			n, err := strconv.Atoi(st)
			if err != nil || n < 1 {
				return nil, fmt.Errorf("array index list %q: bad step %q", s, st)
			}
			part, step = r, n
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("array index list %q: %q is not an index", s, part)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("array index list %q: %q is not a range", s, part)
			}
		}
		for i := a; i <= b; i += step {
			out = append(out, i)
		}
	}
	return out, nil
}

// FormatIndices writes indices (sorted, without repeats) as a compact array list: "0-3,7,9-10".
func FormatIndices(idx []int) string {
	var parts []string
	for i := 0; i < len(idx); {
		j := i
		for j+1 < len(idx) && idx[j+1] == idx[j]+1 {
			j++
		}
		if j == i {
			parts = append(parts, strconv.Itoa(idx[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", idx[i], idx[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}
