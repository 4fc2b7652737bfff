package engine_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/trialcat/trialcat/internal/engine"
	"github.com/trialcat/trialcat/internal/exitcode"
	"github.com/trialcat/trialcat/internal/fakeai"
	"github.com/trialcat/trialcat/internal/rundir"
)

// promptFailingAt writes a prompt template that renders for every record but the one at index.
func promptFailingAt(t *testing.T, index int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "prompt.tmpl")
	text := "Categorize trial {{.ID}}.{{if eq .Index " + strconv.Itoa(index) + "}}{{.Record.no_such_field}}{{end}}\n{{get \"protocolSection.identificationModule.briefTitle\"}}\n"
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// The first worker starts while the split still writes and checks later batches; a record that
// cannot be asked stops the run there, naming it, and keeps what was answered before.
func TestSplitStopsAtARecordThatCannotBeAsked(t *testing.T) {
	t.Parallel()
	_, url := startFake(t, fakeai.Config{})
	// 4,000 records, the last one bad: checking the 3,000 after batch 0 takes far longer than
	// starting batch 0's worker.
	input, _ := replicate(t, t.TempDir(), 40)
	prompt := promptFailingAt(t, 3999)
	sum, err, out := runInProcess(t, fakePlan{}, func(o *engine.Options) {
		o.Input, o.Provider, o.BaseURL, o.PromptFile, o.Workers, o.Batches = input, "openai", url, prompt, 1, "4"
	})
	if !errors.Is(err, exitcode.ErrUsage) || !strings.Contains(err.Error(), "record 3999") {
		t.Fatalf("Run = %v; want a usage error naming record 3999", err)
	}
	if sum == nil {
		t.Fatalf("no summary: the answers before the bad record were not merged: %v", err)
	}
	// Batch 3 holds the bad record: it was never committed, nothing of it was asked.
	for _, n := range []int{3} {
		if _, err := os.Stat(rundir.New(out).Batch(n)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("batch_%d.json exists (%v); its records were not all checked", n, err)
		}
	}
	if sum.Succeeded == 0 || sum.Succeeded > 3000 || sum.Remaining < 1000 {
		t.Errorf("succeeded %d, remaining %d; want batch 0 (at least) answered and batch 3 left", sum.Succeeded, sum.Remaining)
	}
}

// A template that fails on the first record stops the run before any request, and leaves no
// run behind: the rerun with the template fixed needs no --fresh.
func TestSplitFailingAtOnceLeavesNoRun(t *testing.T) {
	t.Parallel()
	fake, url := startFake(t, fakeai.Config{})
	out := t.TempDir()
	_, err, _ := runInProcessIn(t, out, fakePlan{}, func(o *engine.Options) {
		o.Provider, o.BaseURL, o.PromptFile = "openai", url, promptFailingAt(t, 0)
	})
	if !errors.Is(err, exitcode.ErrUsage) || !strings.Contains(err.Error(), "record 0") {
		t.Fatalf("Run = %v; want a usage error naming record 0", err)
	}
	if n := fake.Stats().Requests; n != 0 {
		t.Errorf("%d requests before the check failed; want none", n)
	}
	if _, err := os.Stat(rundir.New(out).Run()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("run.json left behind (%v)", err)
	}
	sum, err, _ := runInProcessIn(t, out, fakePlan{}, func(o *engine.Options) {
		o.Provider, o.BaseURL = "openai", url
	})
	if err != nil || sum.Succeeded != 100 {
		t.Fatalf("rerun = %v (%v succeeded); want all 100 without --fresh", err, sum)
	}
}

// A split cut short (killed after run.json and some batch files) is resumed: the missing batch
// files are written again, the same as a whole split writes them.
func TestSplitCutShortIsResumed(t *testing.T) {
	t.Parallel()
	whole := t.TempDir()
	if _, err, _ := runInProcessIn(t, whole, fakePlan{}, nil); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(rundir.New(whole).Batch(2))
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if err := engine.Split(t.Context(), engine.Options{Input: sample, Out: out, Workers: 4, Provider: "offline",
		Model: engine.DefaultModel, MaxAttempts: engine.DefaultMaxAttempts, Timeout: engine.DefaultTimeout,
		Concurrency: 1}, engine.Deps{Stdout: &bytes.Buffer{}}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{2, 3} {
		if err := os.Remove(rundir.New(out).Batch(n)); err != nil {
			t.Fatal(err)
		}
	}
	sum, err, _ := runInProcessIn(t, out, fakePlan{}, nil)
	if err != nil || sum.Succeeded != 100 {
		t.Fatalf("resume = %v (%+v); want all 100 answered", err, sum)
	}
	got, err := os.ReadFile(rundir.New(out).Batch(2))
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("batch_2.json written again differs from a whole split's (%v)", err)
	}
	assertExactlyOnce(t, out, sampleIDs(t, sample))
}
