package rundir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The names of a run folder's files. Worker files carry the batch number in place of %d.
const (
	runFile           = "run.json"
	summaryFile       = "summary.json"
	reportFile        = "report.html"
	finalResultsFile  = "final_results.csv"
	finalFailuresFile = "final_failures.csv"
	streamFile        = "results.jsonl"
	lockFile          = ".lock"
	mergingFile       = ".merging"
	batchFile         = "batch_%d.json"
	batchIDsFile      = "batch_%d.ids"
	resultsFile       = "worker_%d_results.csv"
	failuresFile      = "worker_%d_failures.csv"
	logFile           = "worker_%d_log.txt"
	attemptsFile      = "worker_%d_attempts.log"
	batchLockFile     = ".batch_%d.lock"
	batchAPIFile      = "worker_%d_batchapi.json"
	batchPartFile     = "worker_%d_part_%d.jsonl"
	votesFile         = "worker_%d_votes.jsonl"
	exportDir         = "export"
	limitsFile        = "limits.json"
	limitsLockFile    = ".limits.lock"
	slurmDir          = "slurm"
	slurmScript       = "array.sbatch"
	slurmJobs         = "jobs.json"
	slurmTaskLog      = "task_%a.log" // %a: Slurm's array index
	k8sDir            = "k8s"
	k8sJob            = "job.yaml"
	transcriptsDir    = "transcripts"
	transcriptFile    = "worker_%d.jsonl"
	reviewFile        = "review_sample.csv"
	carriedFile       = "carried.jsonl"
	correctionsFile   = "corrections.json"
	previousPrefix    = "previous-"
	previousTime      = "20060102T150405.000Z"
)

var (
	batchName = regexp.MustCompile(`^batch_(\d+)\.json$`)
	// batchIDsName is a batch file's ID index, written beside it by the split.
	batchIDsName = regexp.MustCompile(`^batch_(\d+)\.ids$`)
	// workerName matches the files a worker writes; group 1 is N, group 2 the kind.
	workerName = regexp.MustCompile(`^worker_(\d+)_(results\.csv|failures\.csv|log\.txt|attempts\.log|batchapi\.json|part_\d+\.jsonl|votes\.jsonl)$`)
	tempName   = regexp.MustCompile(`^\..+\.tmp-[0-9]+$`)
)

// Dir is one run folder.
type Dir struct{ path string }

// New returns the run folder at path (which need not exist yet).
func New(path string) Dir { return Dir{path: path} }

// Path is the folder itself.
func (d Dir) Path() string { return d.path }

func (d Dir) join(name string) string { return filepath.Join(d.path, name) }

// Run is run.json.
func (d Dir) Run() string { return d.join(runFile) }

// Summary is summary.json.
func (d Dir) Summary() string { return d.join(summaryFile) }

// Report is report.html.
func (d Dir) Report() string { return d.join(reportFile) }

// FinalResults is final_results.csv.
func (d Dir) FinalResults() string { return d.join(finalResultsFile) }

// FinalFailures is final_failures.csv.
func (d Dir) FinalFailures() string { return d.join(finalFailuresFile) }

// Stream is results.jsonl: each answered record as a JSON line, as the run learns of it.
func (d Dir) Stream() string { return d.join(streamFile) }

// Merging marks a merge whose two final files may not both be new yet: a start that finds it
// merges again.
func (d Dir) Merging() string { return d.join(mergingFile) }

// Lock is the coordinator's lock file.
func (d Dir) Lock() string { return d.join(lockFile) }

// Batch is batch_N.json.
func (d Dir) Batch(n int) string { return d.join(BatchName(n)) }

// Previous is the folder that files of an earlier run move to at time t.
func (d Dir) Previous(t time.Time) string {
	return d.join(previousPrefix + t.UTC().Format(previousTime))
}

// Limits is limits.json: the address and token of a running limit server (mode 0600).
func (d Dir) Limits() string { return d.join(limitsFile) }

// LimitsLock is held (flock) by the one limit server of the run.
func (d Dir) LimitsLock() string { return d.join(limitsLockFile) }

// Slurm are the files of a run's Slurm job array.
type Slurm struct {
	Dir     string // slurm/
	Script  string // slurm/array.sbatch, the array's batch script
	Jobs    string // slurm/jobs.json, every submission's job ID
	TaskLog string // the name of a task's log in Dir, with Slurm's %a for the array index
}

// Slurm names the files of the run's Slurm job array.
func (d Dir) Slurm() Slurm {
	sub := d.join(slurmDir)
	return Slurm{Dir: sub, Script: filepath.Join(sub, slurmScript), Jobs: filepath.Join(sub, slurmJobs), TaskLog: slurmTaskLog}
}

// TaskLogOf is the log of the Slurm task of batch n.
func (s Slurm) TaskLogOf(n int) string {
	return filepath.Join(s.Dir, strings.Replace(s.TaskLog, "%a", strconv.Itoa(n), 1))
}

// Export is export/batch_N.jsonl, batch n's requests in the Batch API's input format (for
// vllm run-batch or a manual upload).
func (d Dir) Export(n int) string {
	return filepath.Join(d.join(exportDir), fmt.Sprintf("batch_%d.jsonl", n))
}

// K8sJob is k8s/job.yaml, the run's Kubernetes Indexed Job.
func (d Dir) K8sJob() string { return filepath.Join(d.join(k8sDir), k8sJob) }

// Corrections is corrections.json: a person's corrections (coordinator review import), keyed
// by record ID and content hash. Like the review sheet it is the reviewer's: --fresh leaves it in
// place, and every merge applies it.
func (d Dir) Corrections() string { return d.join(correctionsFile) }

// Carried is carried.jsonl: the earlier run's answers a --since-run run may take, with the
// content hash of each record they answered.
func (d Dir) Carried() string { return d.join(carriedFile) }

// ReviewSample is the review sheet `coordinator sample` writes for a person to fill in. It is
// the reviewer's file once written: --fresh leaves it where it is.
func (d Dir) ReviewSample() string { return d.join(reviewFile) }

// BatchName is the base name of batch n's file, batch_N.json.
func BatchName(n int) string { return fmt.Sprintf(batchFile, n) }

// Worker are the files of the worker of one batch.
type Worker struct {
	Dir    Dir
	Number int
	Batch  string // batch_N.json
	// BatchIDs is batch_N.ids: the batch's IDs in order, one JSON string a line, written before the batch
	// file is committed, so the merge need not parse the batch's records for them.
	BatchIDs string
	Results  string // worker_N_results.csv
	Failures string // worker_N_failures.csv
	Log      string // worker_N_log.txt
	Attempts string // worker_N_attempts.log
	Lock     string // .batch_N.lock, held by the one worker working on the batch
	// BatchAPI is worker_N_batchapi.json: the Batch API backend's record of every input file
	// and batch of this worker, written the moment each exists.
	BatchAPI string
	// Transcript is transcripts/worker_N.jsonl: an agent run's turns, a line each.
	Transcript string
	// Votes is worker_N_votes.jsonl: each answer of a --votes run as it arrives, so a record
	// cut off after some of its votes asks only the rest.
	Votes string
}

// Part is worker_N_part_K.jsonl, the K-th Batch API input file of the worker.
func (w Worker) Part(k int) string {
	return w.Dir.join(fmt.Sprintf(batchPartFile, w.Number, k))
}

// Worker names the files of batch n's worker.
func (d Dir) Worker(n int) Worker {
	p := func(format string) string { return d.join(fmt.Sprintf(format, n)) }
	return Worker{
		Dir: d, Number: n, Batch: p(batchFile), BatchIDs: p(batchIDsFile), Results: p(resultsFile), Failures: p(failuresFile),
		Log: p(logFile), Attempts: p(attemptsFile), Lock: p(batchLockFile), BatchAPI: p(batchAPIFile),
		Transcript: filepath.Join(d.join(transcriptsDir), fmt.Sprintf(transcriptFile, n)),
		Votes:      p(votesFile),
	}
}

// ErrNotBatch means a path is not named batch_N.json.
var ErrNotBatch = errors.New("not a batch file")

// ForBatch names the files of the worker of the batch file at path, in the batch file's folder.
func ForBatch(path string) (Worker, error) {
	m := batchName.FindStringSubmatch(filepath.Base(path))
	if m == nil {
		return Worker{}, fmt.Errorf("batch file %q is not named batch_N.json; the worker's output names come from N: %w", path, ErrNotBatch)
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		return Worker{}, fmt.Errorf("batch file %q: %w: %w", path, err, ErrNotBatch)
	}
	return New(filepath.Dir(path)).Worker(n), nil
}

// IsRun reports whether the folder holds a run (its run.json exists).
func (d Dir) IsRun() bool {
	_, err := os.Stat(d.Run())
	return err == nil
}

// Batches lists the numbers of the batch files present, in order.
func (d Dir) Batches() ([]int, error) {
	return d.numbered(func(name string) (int, bool) {
		m := batchName.FindStringSubmatch(name)
		if m == nil {
			return 0, false
		}
		n, err := strconv.Atoi(m[1])
		return n, err == nil
	})
}

// Logs lists the numbers of the workers whose log file is present, in order.
func (d Dir) Logs() ([]int, error) {
	return d.numbered(func(name string) (int, bool) {
		m := workerName.FindStringSubmatch(name)
		if m == nil || m[2] != "log.txt" {
			return 0, false
		}
		n, err := strconv.Atoi(m[1])
		return n, err == nil && name == fmt.Sprintf(logFile, n)
	})
}

func (d Dir) numbered(match func(string) (int, bool)) ([]int, error) {
	var out []int
	_, err := d.names(func(name string) bool {
		if n, ok := match(name); ok {
			out = append(out, n)
		}
		return false
	})
	sort.Ints(out)
	return out, err
}

// Kind tells what a run file is, by its name.
type Kind int

// Kinds of the files a run owns.
const (
	NotOwned   Kind = iota
	KindRun         // run.json
	KindBatch       // batch_N.json
	KindWorker      // worker_N_*: what a worker wrote
	KindFinal       // final files, summary.json, report.html
	KindEngine      // a scheduler's folder (slurm/, k8s/) or limits.json
)

// Classify says which of the run's files name is, or NotOwned.
func Classify(name string) Kind {
	switch {
	case name == runFile, name == carriedFile:
		return KindRun
	case batchName.MatchString(name), batchIDsName.MatchString(name):
		return KindBatch
	case workerName.MatchString(name), name == transcriptsDir:
		return KindWorker
	case name == summaryFile || name == reportFile || name == finalResultsFile || name == finalFailuresFile || name == streamFile:
		return KindFinal
	case name == slurmDir || name == k8sDir || name == limitsFile || name == exportDir:
		return KindEngine
	}
	return NotOwned
}

// Temps lists the paths of temporary files left in the folder by atomic writes that did not finish
// (a kill mid-write).
func (d Dir) Temps() ([]string, error) {
	names, err := d.names(IsTemp)
	for i, n := range names {
		names[i] = d.join(n)
	}
	return names, err
}

// IsTemp reports whether name is a temporary file left by an atomic write that did not finish.
func IsTemp(name string) bool { return tempName.MatchString(name) }

// Owned lists the base names of the run's own files in the folder (never the lock, temporary
// files, sub-folders or anything else a user keeps there).
func (d Dir) Owned() ([]string, error) {
	return d.names(func(name string) bool { return Classify(name) != NotOwned })
}

// names lists the base names of the files (not folders) in the folder that keep accepts.
func (d Dir) names(keep func(string) bool) ([]string, error) {
	entries, err := os.ReadDir(d.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", d.path, err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && keep(e.Name()) {
			names = append(names, e.Name())
		}
	}
	return names, nil
}
