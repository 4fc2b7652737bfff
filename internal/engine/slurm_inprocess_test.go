package engine_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/trialcat/trialcat/internal/engine"
	"github.com/trialcat/trialcat/internal/exitcode"
)

// scriptedSlurm plays Slurm's commands: sbatch hands out job IDs, scontrol reports each task
// of a job in the state the test set.
type scriptedSlurm struct {
	mu     sync.Mutex
	next   int
	states map[string]string // job → scontrol -o show job output
	calls  []string
}

func (s *scriptedSlurm) Run(_ context.Context, name string, args ...string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, name+" "+strings.Join(args, " "))
	switch name {
	case "sbatch":
		s.next++
		return []byte(fmt.Sprintf("%d\n", 100+s.next)), nil
	case "squeue":
		return nil, nil
	case "scontrol":
		job := args[len(args)-1]
		if out, ok := s.states[job]; ok {
			return []byte(out), nil
		}
		return nil, errors.New("slurm_load_jobs error: Invalid job id specified")
	}
	return nil, fmt.Errorf("unexpected command %s", name)
}

func (s *scriptedSlurm) ran(prefix string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, c := range s.calls {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}

// TestSlurmTaskRefusedByTheAPIExitsAsARunDoes: a task whose worker exited 3 (the API refused
// the run) makes --wait exit 1 naming the cause; the rerun submits just the unfinished batches.
func TestSlurmTaskRefusedByTheAPIExitsAsARunDoes(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "out")
	var stdout bytes.Buffer
	deps := engine.Deps{Stdout: &stdout, Getenv: func(string) string { return "" }}
	if err := engine.Split(t.Context(), engine.Options{Input: sample, Out: out, Workers: 3, Provider: "offline",
		Model: "offline", MaxAttempts: 1, Concurrency: 1, Timeout: 1e9}, deps); err != nil {
		t.Fatal(err)
	}
	sl := &scriptedSlurm{states: map[string]string{
		"101": "JobId=101 ArrayJobId=101 ArrayTaskId=0 JobState=COMPLETED ExitCode=0:0\n" +
			"JobId=102 ArrayJobId=101 ArrayTaskId=1 JobState=FAILED ExitCode=3:0\n" +
			"JobId=103 ArrayJobId=101 ArrayTaskId=2 JobState=CANCELLED ExitCode=0:15\n",
	}}
	deps.Slurm = sl
	opts := engine.SlurmOptions{Options: engine.Options{Out: out, WorkerBin: "/bin/true"}, Wait: true}
	err := engine.Slurm(t.Context(), opts, deps)
	if !errors.Is(err, exitcode.ErrFatalAPI) || exitcode.Code(err) != exitcode.Failed || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("err = %v (exit %d); want the API refusal, exit 1", err, exitcode.Code(err))
	}
	for _, want := range []string{"batch 1: FAILED (exit 3)", "batch 2: CANCELLED (signal 15)", "task_1.log"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
	// Nothing ran for real (the worker is /bin/true): every batch is unfinished. Batch 2's
	// task is requeued and running now: the rerun submits 0 and 1 only.
	sl.mu.Lock()
	sl.states["101"] = strings.Replace(sl.states["101"], "JobState=CANCELLED ExitCode=0:15", "JobState=RUNNING ExitCode=0:0", 1)
	sl.mu.Unlock()
	stdout.Reset()
	if err := engine.Slurm(t.Context(), engine.SlurmOptions{Options: engine.Options{Out: out, WorkerBin: "/bin/true"}}, deps); err != nil {
		t.Fatal(err)
	}
	subs := sl.ran("sbatch")
	if len(subs) != 2 || strings.Contains(subs[0], "--array") || !strings.Contains(subs[1], "--array=0-1 ") {
		t.Errorf("sbatch calls %q; want the whole array, then batches 0 and 1 only", subs)
	}
	if !strings.Contains(stdout.String(), "batch 2 is queued or running already") {
		t.Errorf("the rerun does not say batch 2 is running:\n%s", stdout.String())
	}
	script, _ := os.ReadFile(filepath.Join(out, "slurm", "array.sbatch"))
	if !bytes.Contains(script, []byte("WORKER=/bin/true")) {
		t.Errorf("the script does not run the given worker:\n%s", script)
	}
}
