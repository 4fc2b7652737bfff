package rundir

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestNames(t *testing.T) {
	d := New("out")
	for _, tc := range []struct{ got, want string }{
		{d.Run(), "out/run.json"},
		{d.Summary(), "out/summary.json"},
		{d.Report(), "out/report.html"},
		{d.FinalResults(), "out/final_results.csv"},
		{d.FinalFailures(), "out/final_failures.csv"},
		{d.Lock(), "out/.lock"},
		{d.Batch(3), "out/batch_3.json"},
		{d.Worker(3).Results, "out/worker_3_results.csv"},
		{d.Worker(3).Failures, "out/worker_3_failures.csv"},
		{d.Worker(3).Log, "out/worker_3_log.txt"},
		{d.Worker(3).Attempts, "out/worker_3_attempts.log"},
		{d.Previous(time.Date(2026, 12, 1, 9, 5, 7, 123e6, time.UTC)), "out/previous-20261201T090507.123Z"},
		{d.Slurm().Script, "out/slurm/array.sbatch"},
		{d.Slurm().Jobs, "out/slurm/jobs.json"},
		{d.Slurm().TaskLogOf(7), "out/slurm/task_7.log"},
		{d.Limits(), "out/limits.json"},
		{d.K8sJob(), "out/k8s/job.yaml"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %s, want %s", tc.got, tc.want)
		}
	}
}

func TestForBatch(t *testing.T) {
	w, err := ForBatch("runs/a/batch_12.json")
	if err != nil || w.Number != 12 || w.Dir.Path() != "runs/a" || w.Results != "runs/a/worker_12_results.csv" {
		t.Errorf("ForBatch = %+v, %v", w, err)
	}
	for _, bad := range []string{"runs/a/batch.json", "batch_x.json", "batch_1.json.tmp-4", "mybatch_1.json"} {
		if _, err := ForBatch(bad); !errors.Is(err, ErrNotBatch) {
			t.Errorf("ForBatch(%q) = %v; want ErrNotBatch", bad, err)
		}
	}
}

func TestListing(t *testing.T) {
	dir := t.TempDir()
	d := New(dir)
	for _, name := range []string{"run.json", "batch_0.json", "batch_10.json", "batch_2.json", "worker_2_log.txt",
		"worker_0_results.csv", "final_results.csv", "summary.json", ".lock", ".batch_3.json.tmp-123", "notes.txt", "worker_x_log.txt"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "batch_7.json"), 0o755); err != nil { // a folder is never a batch
		t.Fatal(err)
	}
	if !d.IsRun() || New(filepath.Join(dir, "none")).IsRun() {
		t.Error("IsRun is wrong")
	}
	if got, err := d.Batches(); err != nil || !slices.Equal(got, []int{0, 2, 10}) {
		t.Errorf("Batches = %v, %v; want [0 2 10]", got, err)
	}
	if got, err := d.Logs(); err != nil || !slices.Equal(got, []int{2}) {
		t.Errorf("Logs = %v, %v; want [2]", got, err)
	}
	owned, err := d.Owned()
	want := []string{"batch_0.json", "batch_10.json", "batch_2.json", "final_results.csv", "run.json", "summary.json", "worker_0_results.csv", "worker_2_log.txt"}
	if err != nil || !slices.Equal(owned, want) {
		t.Errorf("Owned = %v, %v; want %v (never the lock, temporary files or a user's files)", owned, err, want)
	}
	if !IsTemp(".batch_3.json.tmp-123") || IsTemp("batch_3.json") || IsTemp(".lock") {
		t.Error("IsTemp is wrong")
	}
	if temps, err := d.Temps(); err != nil || !slices.Equal(temps, []string{filepath.Join(dir, ".batch_3.json.tmp-123")}) {
		t.Errorf("Temps = %v, %v", temps, err)
	}
	if got, err := New(filepath.Join(dir, "missing")).Batches(); err != nil || got != nil {
		t.Errorf("Batches of a missing folder = %v, %v; want none", got, err)
	}
}
