package worker

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/trialcat/trialcat/internal/exitcode"
	"github.com/trialcat/trialcat/internal/fakeai"
	"github.com/trialcat/trialcat/internal/rundir"
	"github.com/trialcat/trialcat/internal/runspec"
)

// batchAPIRun runs batch 0 of a new run of n records through the fake Batch API with bc.
func batchAPIRun(t *testing.T, n int, bc fakeai.BatchConfig) (dir string, ids []string, err error) {
	t.Helper()
	bc.InProgress = 20 * time.Millisecond
	dir, _, ids = setup(t, n, fakeai.Config{Batch: bc}, 3)
	d := rundir.New(dir)
	spec, err := runspec.Load(d.Run())
	if err != nil {
		t.Fatal(err)
	}
	spec.Backend, spec.BatchAPI.Poll = runspec.BackendBatchAPI, runspec.Duration(10*time.Millisecond)
	if err := runspec.Save(d.Run(), spec); err != nil {
		t.Fatal(err)
	}
	err = Run(t.Context(), Options{BatchPath: d.Batch(0)}, deps())
	return dir, ids, err
}

// An output file that answers each custom_id twice gives each record one row.
func TestCollectKeepsOneAnswerPerCustomID(t *testing.T) {
	dir, ids, err := batchAPIRun(t, 6, fakeai.BatchConfig{DuplicateCustomID: true})
	if err != nil {
		t.Fatalf("Run = %v", err)
	}
	got := resultIDs(t, rundir.New(dir).Worker(0).Results)
	slices.Sort(got)
	want := slices.Clone(ids)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("results hold %v; want each of %v once", got, want)
	}
}

// A batch that says completed but leaves answers out of its files keeps those records to do,
// says so, and gives their attempts back; an answer for a custom_id not asked is ignored.
func TestCollectKeepsMissingAnswersToDo(t *testing.T) {
	dir, ids, err := batchAPIRun(t, 6, fakeai.BatchConfig{MissingCustomIDs: 2, UnknownCustomID: true})
	if !errors.Is(err, exitcode.ErrRecordsFailed) {
		t.Fatalf("Run = %v; want the records not done reported", err)
	}
	got := resultIDs(t, rundir.New(dir).Worker(0).Results)
	if len(got) != len(ids)-2 {
		t.Fatalf("%d rows; want %d (2 answers missing)", len(got), len(ids)-2)
	}
	if slices.Contains(got, "NOT-IN-THE-INPUT") {
		t.Error("an answer for a custom_id not asked was kept")
	}
	if failures := resultIDs(t, rundir.New(dir).Worker(0).Failures); len(failures) != 0 {
		t.Errorf("the missing answers failed (%v); they should stay to do", failures)
	}
}

// An expired batch keeps its answers and leaves the rest to do, without failing any record.
func TestCollectOfAnExpiredBatch(t *testing.T) {
	dir, ids, err := batchAPIRun(t, 8, fakeai.BatchConfig{ExpireAfterShare: 0.5})
	if !errors.Is(err, exitcode.ErrRecordsFailed) {
		t.Fatalf("Run = %v; want the records not run reported", err)
	}
	if got := resultIDs(t, rundir.New(dir).Worker(0).Results); len(got) != len(ids)/2 {
		t.Errorf("%d rows after the batch expired half way; want %d", len(got), len(ids)/2)
	}
	if failures := resultIDs(t, rundir.New(dir).Worker(0).Failures); len(failures) != 0 {
		t.Errorf("expired requests failed (%v); they should stay to do", failures)
	}
}
