package slurm

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseIndices(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
		bad  bool
	}{
		{"7", []int{7}, false},
		{"0-3", []int{0, 1, 2, 3}, false},
		{"1,3,5-7%2", []int{1, 3, 5, 6, 7}, false},
		{"[2-3%4]", []int{2, 3}, false},
		{"0-6:3", []int{0, 3, 6}, false},
		{"", nil, false},
		{"(null)", nil, false},
		{"3-1", nil, true},
		{"x", nil, true},
	} {
		got, err := ParseIndices(tc.in)
		if (err != nil) != tc.bad || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseIndices(%q) = %v, %v; want %v (error %v)", tc.in, got, err, tc.want, tc.bad)
		}
	}
	if got := FormatIndices([]int{0, 1, 2, 3, 7, 9, 10}); got != "0-3,7,9-10" {
		t.Errorf("FormatIndices = %q", got)
	}
	if got := ArraySpec([]int{4}, 2); got != "4%2" {
		t.Errorf("ArraySpec = %q", got)
	}
}

// What scontrol -o show job printed on the local cluster for an array with one task pending,
// one failed with exit 3, one cancelled and one completed (fields trimmed).
const scontrolOut = `JobId=20 ArrayJobId=20 ArrayTaskId=3%2 JobName=trialcat-1 JobState=PENDING Reason=JobArrayTaskLimit ExitCode=0:0 Command=/tmp/a b/array.sbatch
JobId=22 ArrayJobId=20 ArrayTaskId=2 JobName=trialcat-1 JobState=FAILED Reason=NonZeroExitCode ExitCode=3:0
JobId=21 ArrayJobId=20 ArrayTaskId=1 JobName=trialcat-1 JobState=CANCELLED Reason=None ExitCode=0:15
JobId=20 ArrayJobId=20 ArrayTaskId=0 JobName=trialcat-1 JobState=COMPLETED Reason=None ExitCode=0:0
`

func TestParseJobs(t *testing.T) {
	got, err := ParseJobs("20", []byte(scontrolOut))
	if err != nil {
		t.Fatal(err)
	}
	var desc []string
	for _, s := range got {
		desc = append(desc, fmt.Sprintf("%d %s active=%v", s.Task, s, s.Active()))
	}
	want := []string{"0 COMPLETED active=false", "1 CANCELLED (signal 15) active=false", "2 FAILED (exit 3) active=false", "3 PENDING active=true"}
	if !reflect.DeepEqual(desc, want) {
		t.Errorf("ParseJobs =\n%v\nwant\n%v", desc, want)
	}
}

func TestParseJobID(t *testing.T) {
	for in, want := range map[string]string{"123\n": "123", "77;cluster\n": "77"} {
		if got, err := ParseJobID([]byte(in)); err != nil || got != want {
			t.Errorf("ParseJobID(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseJobID([]byte("sbatch: error: Batch job submission failed\n")); err == nil {
		t.Error("an error message was taken for a job ID")
	}
}

// fakeRunner answers Slurm's commands from a table.
type fakeRunner map[string]string

func (f fakeRunner) Run(_ context.Context, name string, args ...string) ([]byte, error) {
	key := name + " " + strings.Join(args, " ")
	out, ok := f[key]
	if !ok {
		return nil, fmt.Errorf("%s: slurm_load_jobs error: Invalid job id specified", key)
	}
	return []byte(out), nil
}

func TestLookKeepsTheNewestTaskOfEachBatch(t *testing.T) {
	r := fakeRunner{
		"squeue -h -t all --name=trialcat-1 -o %F": "20\n20\n31\n",
		"scontrol -o show job 20":                  scontrolOut,
		"scontrol -o show job 31":                  "JobId=31 ArrayJobId=31 ArrayTaskId=1 JobState=RUNNING ExitCode=0:0\n",
		// 9 was recorded but Slurm has forgotten it: no tasks, no error.
	}
	jobs := &Jobs{Name: "trialcat-1", Jobs: []Job{{ID: "9"}, {ID: "20"}}}
	b, ids, err := Look(context.Background(), r, jobs)
	if err != nil {
		t.Fatal(err)
	}
	// Job 31 carries the run's name but is not recorded (submitted by hand, or the ID was lost
	// to a crash): it is adopted with the batch it runs.
	if added := jobs.Adopt(ids, b, time.Time{}); fmt.Sprint(added) != "[31]" || fmt.Sprint(jobs.Last().Batches) != "[1]" {
		t.Errorf("Adopt = %v, last job %+v; want job 31 of batch 1", added, jobs.Last())
	}
	if fmt.Sprint(ids) != "[9 20 31]" {
		t.Errorf("jobs looked at: %v", ids)
	}
	if s := b[1]; s.Job != "31" || s.State != "RUNNING" {
		t.Errorf("batch 1 = %+v; want the resubmitted task of job 31", s)
	}
	if got := b.Active(); fmt.Sprint(got) != "[1 3]" {
		t.Errorf("Active = %v; want [1 3]", got)
	}
}

func TestRenderScript(t *testing.T) {
	s := Script{JobName: "trialcat-ab", Batches: 5, MaxParallel: 2, RateShare: 2, RunDir: "/data/run one",
		Worker: "/opt/bin/worker", LogDir: "/data/run one/slurm", LogName: "task_%a.log", Partition: "gpu",
		Time: "1:00:00", Mem: "2G", Extra: []string{"--account=lab", "--gres=gpu:1"}, Prelude: "/home/u/vllm.sh"}
	text, err := Render(s, "/data/run one/slurm/array.sbatch")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"#SBATCH --array=0-4%2\n", "#SBATCH --job-name=trialcat-ab\n", "#SBATCH --partition=gpu\n", "#SBATCH --time=1:00:00\n",
		"#SBATCH --mem=2G\n", "#SBATCH --account=lab\n", "#SBATCH --gres=gpu:1\n", "RUN_DIR='/data/run one'\n",
		`WORKER_ARGS=(--run-dir "$RUN_DIR" --rate-share 2)`, "source /home/u/vllm.sh ||",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("script lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "OPENAI_API_KEY=") {
		t.Error("the script sets the key")
	}
	// The script is valid bash.
	if bash, err := exec.LookPath("bash"); err == nil {
		cmd := exec.Command(bash, "-n")
		cmd.Stdin = strings.NewReader(text)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("bash -n: %v\n%s", err, out)
		}
	}
	if _, err := Render(Script{Extra: []string{"--x\n#SBATCH --y"}}, "p"); err == nil {
		t.Error("an option with a line break was written")
	}
	if _, err := Render(Script{Partition: "a b"}, "p"); err == nil {
		t.Error("a partition with a space was written")
	}
}

func TestExecNamesAMissingCommand(t *testing.T) {
	_, err := Exec{Env: []string{"PATH=/nonexistent"}}.Run(context.Background(), "sbatch", "x")
	if !errors.Is(err, ErrNoSlurm) || !strings.Contains(err.Error(), "sbatch is not on PATH") {
		t.Errorf("err = %v; want ErrNoSlurm naming sbatch", err)
	}
}
