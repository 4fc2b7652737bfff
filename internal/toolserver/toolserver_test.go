package toolserver

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/trialcat/trialcat/internal/testkit"
)

var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "toolserver-test")
	if err != nil {
		panic(err)
	}
	if err := testkit.Build(dir, false, "github.com/trialcat/trialcat/cmd/interventions-mcp"); err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "interventions-mcp")
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			println(err.Error())
			code = 1
		}
	}
	os.Exit(code)
}

func start(t *testing.T, argv ...string) (*Server, *testkit.Buffer) {
	t.Helper()
	var stderr testkit.Buffer
	s, err := Start(context.Background(), Config{Argv: argv, Env: []string{"PATH=" + os.Getenv("PATH")},
		Stderr: func(l string) { stderr.Write([]byte(l + "\n")) }})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(s.Stop)
	return s, &stderr
}

// The example server starts, lists its tool, answers from the bundled records, re-logs its
// stderr, and stops when asked.
func TestExampleServer(t *testing.T) {
	s, stderr := start(t, bin, "--records", "../../testdata/trials.jsonl")
	if len(s.Tools()) != 1 || s.Tools()[0].Name != "lookup_intervention" {
		t.Fatalf("tools = %+v", s.Tools())
	}
	props, _ := s.Tools()[0].Parameters["properties"].(map[string]any)
	if _, ok := props["name"]; !ok {
		t.Errorf("parameters = %v", s.Tools()[0].Parameters)
	}
	text, isErr, err := s.Call(context.Background(), "lookup_intervention", json.RawMessage(`{"name":"placebo"}`))
	if err != nil || isErr || !strings.Contains(text, "studies as") {
		t.Errorf("lookup placebo: %q %v %v", text, isErr, err)
	}
	text, _, err = s.Call(context.Background(), "lookup_intervention", json.RawMessage(`{"name":"zzqq-no-such"}`))
	if err != nil || !strings.Contains(text, "No study") {
		t.Errorf("lookup of an unknown name: %q %v", text, err)
	}
	if !strings.HasPrefix(stderr.String(), "interventions-mcp: ") || !strings.Contains(stderr.String(), "intervention names from 100 studies") {
		t.Errorf("stderr not re-logged: %q", stderr.String())
	}
}

// A server that dies fails the next call with its exit, not a hang; one that cannot start says
// why.
func TestServerThatDies(t *testing.T) {
	s, _ := start(t, bin, "--records", "../../testdata/trials.jsonl")
	if err := syscall.Kill(s.p.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, _, err := s.Call(context.Background(), "lookup_intervention", json.RawMessage(`{"name":"placebo"}`))
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "exited") {
			t.Errorf("call to a killed server: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a call to a killed server hangs")
	}

	_, err := Start(context.Background(), Config{Argv: []string{bin}, Env: nil})
	if err == nil || !strings.Contains(err.Error(), "--records FILE is required") {
		t.Errorf("a server that exits at start: %v", err)
	}
	_, err = Start(context.Background(), Config{Argv: []string{"/bin/sh", "-c", "echo not json; sleep 30"}, StartTimeout: 2 * time.Second})
	if err == nil {
		t.Error("a program that does not speak MCP was taken for a server")
	}
}
