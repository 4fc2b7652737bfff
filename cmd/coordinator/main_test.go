package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/trialcat/trialcat/internal/exitcode"
	"github.com/trialcat/trialcat/internal/rundir"
	"github.com/trialcat/trialcat/internal/testkit"
)

// workerBin is the worker binary the runs in these tests start; "" under -short, where the tests
// that need workers skip.
var workerBin string

func TestMain(m *testing.M) {
	flag.Parse()
	code := func() int {
		if testing.Short() {
			return m.Run()
		}
		dir, err := os.MkdirTemp("", "trialcat-cmd-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		if err := testkit.Build(dir, testkit.Race, "../worker"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		workerBin = filepath.Join(dir, "worker")
		return m.Run()
	}()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left running:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// The tests here run one after another: urfave/cli keeps its help flag and help command in
// package variables that every app's parse writes, so two command lines parsed at once in one
// process race (the program itself parses one).

func needWorker(t *testing.T) {
	t.Helper()
	if workerBin == "" {
		t.Skip("starts worker processes: the worker is not built with -short")
	}
}

// result is what one command did: its exit code and its two streams.
type result struct {
	code           int
	err            error
	stdout, stderr string
}

// coordinator runs the command line in this process, as main does, with the environment vars
// (nothing else of the test's environment leaks in but PATH and HOME).
func coordinator(t *testing.T, vars map[string]string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return coordinatorCtx(ctx, t, vars, args...)
}

func coordinatorCtx(ctx context.Context, t *testing.T, vars map[string]string, args ...string) result {
	t.Helper()
	var out, errb testkit.Buffer
	getenv := func(k string) string {
		if v, ok := vars[k]; ok {
			return v
		}
		if k == "PATH" || k == "HOME" {
			return os.Getenv(k)
		}
		return ""
	}
	err := run(ctx, append([]string{"coordinator"}, args...), env{stdout: &out, stderr: &errb, getenv: getenv})
	return result{code: exitcode.Code(err), err: err, stdout: out.String(), stderr: errb.String()}
}

func (r result) want(t *testing.T, code int, what string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("%s: exit %d, want %d\nerror: %v\nstdout:\n%s\nstderr:\n%s", what, r.code, code, r.err, r.stdout, r.stderr)
	}
}

// sample writes the first n records of the bundled sample to a file of the test's own.
func sample(t *testing.T, n int) string {
	t.Helper()
	f, err := os.Open("../../testdata/trials.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b strings.Builder
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for i := 0; i < n && sc.Scan(); i++ {
		b.WriteString(sc.Text() + "\n")
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "trials.jsonl")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// rows are the data rows of a CSV file (its header left out).
func rows(t *testing.T, path string) [][]string {
	t.Helper()
	all := testkit.ReadCSV(t, path)
	if len(all) == 0 {
		t.Fatalf("%s has no header", path)
	}
	return all[1:]
}

// offlineRun runs n sample records offline into a new folder and returns it.
func offlineRun(t *testing.T, n int, extra ...string) string {
	t.Helper()
	needWorker(t)
	out := filepath.Join(t.TempDir(), "run")
	args := append([]string{"--input", sample(t, n), "--out", out, "--workers", "2", "--worker-bin", workerBin, "--progress", "off"}, extra...)
	coordinator(t, nil, args...).want(t, 0, "offline run")
	return out
}

func isUsage(t *testing.T, r result) {
	t.Helper()
	if !errors.Is(r.err, exitcode.ErrUsage) {
		t.Fatalf("error %v is not a usage error", r.err)
	}
}

// startLimits runs `coordinator limits --out out` (the default --listen) in this process until
// the returned stop is called, once limits.json is there; stop returns how it ended.
func startLimits(t *testing.T, out string) (stop func() result) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan result, 1)
	go func() { done <- coordinatorCtx(ctx, t, nil, "limits", "--out", out) }()
	stop = func() result {
		cancel()
		select {
		case r := <-done:
			return r
		case <-time.After(30 * time.Second):
			t.Fatal("limits did not stop with its context")
			return result{}
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(rundir.New(out).Limits()); err == nil {
			return stop
		}
		if time.Now().After(deadline) {
			t.Fatalf("limits.json did not appear: %+v", stop())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
