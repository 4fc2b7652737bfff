// Package testkit holds what the tests of several packages need alike: a buffer that a writer
// goroutine and the test can share, the fake API served on loopback, and the project's binaries
// built once for the tests that run them as a user does. Only tests import it.
package testkit

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/trialcat/trialcat/internal/fakeai"
)

// Buffer is a bytes.Buffer safe for writes from other goroutines (a logger, a progress bar, a
// child's output reader) while the test reads it.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String is everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Key is the API key the fake server wants unless a test sets another.
const Key = "sk-test-7f3a9c1e5b2d"

// StartFake serves the fake OpenAI-compatible API on loopback until the test ends and returns it
// with its base URL (ending in /v1). An empty cfg.APIKey becomes Key.
func StartFake(t testing.TB, cfg fakeai.Config) (*fakeai.Server, string) {
	t.Helper()
	if cfg.APIKey == "" {
		cfg.APIKey = Key
	}
	s := fakeai.New(cfg)
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return s, hs.URL + "/v1"
}

// ReadCSV reads a whole CSV file, failing the test when it cannot.
func ReadCSV(t testing.TB, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return rows
}

// Build compiles the packages (paths as `go build` takes them, from the calling test's folder)
// into dir, with the race detector when race is set. It is for TestMain, before any test runs.
func Build(dir string, race bool, pkgs ...string) error {
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	if race {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, pkgs...)...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build %v: %w", pkgs, err)
	}
	return nil
}

// Len is the number of bytes written so far.
func (b *Buffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}

// RunWorker runs the worker binary with args and an environment of PATH and HOME only, failing
// the test unless it exits 0.
func RunWorker(t testing.TB, bin string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	cmd.WaitDelay = 5 * time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("worker %v: %v\n%s", args, err, out)
	}
}

// AnswerLikeVLLM answers an exported input file the way `vllm run-batch` does: each request's
// body sent to the chat server at url (with Key), each answer written to out as an output line.
func AnswerLikeVLLM(t testing.TB, url, in, out string) {
	t.Helper()
	data, err := os.ReadFile(in)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for i, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		var req struct {
			CustomID string          `json:"custom_id"`
			Body     json.RawMessage `json:"body"`
		}
		if err := json.Unmarshal(line, &req); err != nil {
			t.Fatalf("%s line %d: %v", in, i+1, err)
		}
		hr, _ := http.NewRequest(http.MethodPost, url+"/chat/completions", bytes.NewReader(req.Body))
		hr.Header.Set("Authorization", "Bearer "+Key)
		resp, err := http.DefaultClient.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answer, _ := json.Marshal(map[string]any{"id": fmt.Sprintf("vllm-%d", i), "custom_id": req.CustomID,
			"response": map[string]any{"status_code": resp.StatusCode, "body": json.RawMessage(body)}, "error": nil})
		b.Write(append(answer, '\n'))
	}
	http.DefaultClient.CloseIdleConnections() // no connection's goroutines outlive the test
	if err := os.WriteFile(out, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Need skips the test when a prerequisite is missing, saying what is missing and why it is
// needed, except under CI=true, where every prerequisite is installed (.ci/run) and a missing
// one fails the test: CI never passes by skipping.
func Need(t testing.TB, missing string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI must run this test, but %s", missing)
	}
	t.Skip(missing)
}

// SampleRecords reads the bundled sample, testdata/trials.jsonl (from a package directory under
// internal/), one record's JSON a line.
func SampleRecords(t testing.TB) [][]byte {
	t.Helper()
	b, err := os.ReadFile("../../testdata/trials.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Split(bytes.TrimSpace(b), []byte("\n"))
}

// WalkJSON calls fn with every value inside a decoded JSON value and its dotted path ("a.b.0.c":
// objects by key, arrays by index), the value itself first, at path "".
func WalkJSON(v any, fn func(path string, v any)) {
	walkJSON(v, "", fn)
}

func walkJSON(v any, path string, fn func(string, any)) {
	fn(path, v)
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			walkJSON(e, JoinPath(path, k), fn)
		}
	case []any:
		for i, e := range x {
			walkJSON(e, JoinPath(path, fmt.Sprint(i)), fn)
		}
	}
}

// JoinPath appends a segment to a dotted path.
func JoinPath(path, seg string) string {
	if path == "" {
		return seg
	}
	return path + "." + seg
}
