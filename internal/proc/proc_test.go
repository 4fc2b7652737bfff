//go:build unix

package proc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"

	"github.com/trialcat/trialcat/internal/testkit"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(modeEnv); mode != "" {
		os.Exit(child(mode)) // the test binary impersonates a worker
	}
	goleak.VerifyTestMain(m)
}

// deadline bounds every wait in these tests so a broken Stop fails instead of hanging.
const deadline = 20 * time.Second

// child is a running fake child with its captured logs and stdout.
type harness struct {
	p    *Process
	logs *testkit.Buffer

	mu     sync.Mutex
	stdout []string
	lineCh chan string // every stdout line, for waiting on one
}

// childEnv is the whole environment of a fake child. GORACE stops a -race child from sleeping a
// second at exit.
func childEnv(mode string) []string {
	return []string{modeEnv + "=" + mode, "GORACE=atexit_sleep_ms=0"}
}

// startChild starts the test binary in mode, named worker-3, logging to a buffer in JSON.
func startChild(tb testing.TB, ctx context.Context, mode string, edit func(*Spec)) *harness {
	tb.Helper()
	self, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	h := &harness{logs: &testkit.Buffer{}, lineCh: make(chan string, 1000)}
	spec := Spec{
		Name: "worker-3",
		Path: self,
		Env:  childEnv(mode),
		Logger: hclog.New(&hclog.LoggerOptions{
			Output: h.logs, JSONFormat: true, Level: hclog.Trace,
		}),
		OnStdout: func(line []byte) {
			h.mu.Lock()
			h.stdout = append(h.stdout, string(line))
			h.mu.Unlock()
			select {
			case h.lineCh <- string(line):
			default:
			}
		},
		Grace: 2 * time.Second,
	}
	if edit != nil {
		edit(&spec)
	}
	h.p, err = Start(ctx, spec)
	if err != nil {
		tb.Fatalf("Start: %v", err)
	}
	return h
}

// waitLine waits for a stdout line with the given prefix and returns it.
func (h *harness) waitLine(tb testing.TB, prefix string) string {
	tb.Helper()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	for {
		select {
		case l := <-h.lineCh:
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-timer.C:
			h.p.Kill()
			tb.Fatalf("no stdout line %q from the child; logs:\n%s", prefix, h.logs)
			return ""
		}
	}
}

// wait calls Wait, failing the test rather than hanging if the child never exits.
func (h *harness) wait(tb testing.TB) Exit {
	tb.Helper()
	timer := time.AfterFunc(deadline, h.p.Kill)
	defer timer.Stop()
	return h.p.Wait()
}

// logLine is one hclog JSON line.
type logLine map[string]any

// logLines parses the captured logs.
func (h *harness) logLines(tb testing.TB) []logLine {
	tb.Helper()
	var out []logLine
	sc := bufio.NewScanner(strings.NewReader(h.logs.String()))
	sc.Buffer(nil, 8<<20)
	for sc.Scan() {
		var l logLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			tb.Fatalf("log line %q: %v", sc.Text(), err)
		}
		out = append(out, l)
	}
	return out
}

// findLog returns the first log line whose message is msg.
func (h *harness) findLog(tb testing.TB, msg string) logLine {
	tb.Helper()
	for _, l := range h.logLines(tb) {
		if m, _ := l["@message"].(string); m == msg {
			return l
		}
	}
	tb.Fatalf("no log line with message %q in:\n%s", msg, h.logs)
	return nil
}

func TestExitStatus(t *testing.T) {
	tests := []struct {
		mode       string
		wantCode   int
		wantSignal string
		wantString string
		wantLog    string // a message re-logged from the child's stderr
		wantLevel  string
	}{
		{mode: "ok", wantCode: 0, wantString: "exit 0", wantLog: "batch started", wantLevel: "info"},
		{mode: "exit3", wantCode: 3, wantString: "exit 3", wantLog: "giving up", wantLevel: "error"},
		{mode: "panic", wantCode: 2, wantString: "exit 2", wantLog: "panic: boom", wantLevel: "error"},
		{mode: "sigkill-self", wantCode: -1, wantSignal: "SIGKILL", wantString: "killed by SIGKILL"},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			h := startChild(t, context.Background(), tt.mode, nil)
			exit := h.wait(t)
			if exit.Code != tt.wantCode || exit.Signal != tt.wantSignal || exit.Err != nil {
				t.Errorf("exit = %+v, want code %d signal %q", exit, tt.wantCode, tt.wantSignal)
			}
			if exit.String() != tt.wantString {
				t.Errorf("String() = %q, want %q", exit, tt.wantString)
			}
			if exit.Success() != (tt.wantString == "exit 0") {
				t.Errorf("Success() = %v for %s", exit.Success(), exit)
			}
			if tt.wantLog != "" {
				l := h.findLog(t, tt.wantLog)
				if l["@level"] != tt.wantLevel || l["@module"] != "worker-3" {
					t.Errorf("log line %v: want level %q under worker-3", l, tt.wantLevel)
				}
			}
		})
	}
}

func TestStderrRelogged(t *testing.T) {
	h := startChild(t, context.Background(), "ok", nil)
	if exit := h.wait(t); !exit.Success() {
		t.Fatalf("exit = %s", exit)
	}
	started := h.findLog(t, "batch started")
	want := logLine{
		"@level": "info", "@module": "worker-3", "@message": "batch started",
		"records": float64(5), "batch": "batch_3.json", "usage": `{"in":7}`,
	}
	for k, v := range want {
		if started[k] != v {
			t.Errorf("started line: %s = %#v, want %#v (line %v)", k, started[k], v, started)
		}
	}
	for _, k := range []string{"time", "level", "message"} {
		if _, ok := started[k]; ok {
			t.Errorf("started line keeps zerolog's %q field: %v", k, started)
		}
	}
	slow := h.findLog(t, "slow answer")
	if slow["@level"] != "warn" || slow["id"] != "NCT1" {
		t.Errorf("slow line = %v, want level warn with id NCT1", slow)
	}
	if !slices.Equal(h.stdout, []string{`{"event":"done","id":"NCT1"}`}) {
		t.Errorf("stdout lines = %q", h.stdout)
	}
}

func TestParseZerolog(t *testing.T) {
	tests := []struct {
		line    string
		ok      bool
		level   hclog.Level
		msg     string
		wantKVs []any
	}{
		{line: `{"level":"debug","n":1.5,"time":"t","message":"m"}`, ok: true, level: hclog.Debug, msg: "m", wantKVs: []any{"n", json.Number("1.5")}},
		{line: `{"level":"trace","message":"m"}`, ok: true, level: hclog.Trace, msg: "m"},
		{line: `{"level":"error","error":"boom","retry":false,"x":null,"arr":[1, 2]}`, ok: true, level: hclog.Error, wantKVs: []any{"error", "boom", "retry", false, "x", nil, "arr", "[1, 2]"}},
		{line: `{"level":"fatal","message":"dead"}`, ok: true, level: hclog.Error, msg: "dead", wantKVs: []any{"level", "fatal"}},
		{line: `{"message":"no level"}`, ok: true, level: hclog.Info, msg: "no level"},
		{line: `{"message":"m"} trailing`, ok: false},
		{line: `{"message":"m"`, ok: false},
		{line: `["level","info"]`, ok: false},
		{line: `"just a string"`, ok: false},
		{line: `panic: runtime error: index out of range [3] with length 3`, ok: false},
		{line: `goroutine 1 [running]:`, ok: false},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			level, msg, kvs, ok := parseZerolog([]byte(tt.line))
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if !ok {
				return
			}
			if level != tt.level || msg != tt.msg || fmt.Sprint(kvs) != fmt.Sprint(tt.wantKVs) {
				t.Errorf("got %v %q %v, want %v %q %v", level, msg, kvs, tt.level, tt.msg, tt.wantKVs)
			}
		})
	}
}

func TestStop(t *testing.T) {
	tests := []struct {
		name       string
		mode       string
		grace      time.Duration
		wantSignal string // "" = the child exited 0 on its own after SIGTERM
	}{
		{name: "graceful", mode: "hang", grace: 10 * time.Second},
		{name: "SIGKILL after grace", mode: "ignore-term", grace: 200 * time.Millisecond, wantSignal: "SIGKILL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer goleak.VerifyNone(t)
			h := startChild(t, context.Background(), tt.mode, func(s *Spec) { s.Grace = tt.grace })
			h.waitLine(t, "ready")
			h.p.Stop()
			h.p.Stop() // safe twice
			exit := h.wait(t)
			h.p.Stop() // and after exit
			h.p.Kill()
			if exit.Signal != tt.wantSignal || (tt.wantSignal == "" && exit.Code != 0) {
				t.Errorf("exit = %s, want signal %q", exit, tt.wantSignal)
			}
			if tt.wantSignal == "" {
				h.findLog(t, "got SIGTERM, stopping") // the child's shutdown log is drained before Wait returns
			}
			if again := h.p.Wait(); again != exit {
				t.Errorf("second Wait = %+v, want %+v", again, exit)
			}
		})
	}
}

func TestKillTwice(t *testing.T) {
	h := startChild(t, context.Background(), "hang", nil)
	h.waitLine(t, "ready")
	h.p.Kill()
	h.p.Kill()
	if exit := h.wait(t); exit.Signal != "SIGKILL" {
		t.Errorf("exit = %s, want killed by SIGKILL", exit)
	}
	h.p.Kill()
}

func TestContextCancel(t *testing.T) {
	tests := []struct {
		name       string
		mode       string
		grace      time.Duration
		wantSignal string
	}{
		{name: "graceful", mode: "hang", grace: 10 * time.Second},
		{name: "SIGKILL after grace", mode: "ignore-term", grace: 200 * time.Millisecond, wantSignal: "SIGKILL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer goleak.VerifyNone(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			h := startChild(t, ctx, tt.mode, func(s *Spec) { s.Grace = tt.grace })
			h.waitLine(t, "ready")
			cancel()
			exit := h.wait(t)
			if exit.Signal != tt.wantSignal || exit.Err != nil || (tt.wantSignal == "" && exit.Code != 0) {
				t.Errorf("exit = %+v, want signal %q and no error", exit, tt.wantSignal)
			}
			if tt.wantSignal == "" {
				h.findLog(t, "got SIGTERM, stopping")
			}
		})
	}
}

func TestStdin(t *testing.T) {
	h := startChild(t, context.Background(), "echo-stdin", func(s *Spec) { s.Stdin = true })
	if _, err := io.WriteString(h.p.Stdin(), "a\nb c\n"); err != nil {
		t.Fatal(err)
	}
	if err := h.p.Stdin().Close(); err != nil {
		t.Fatal(err)
	}
	if exit := h.wait(t); !exit.Success() {
		t.Fatalf("exit = %s", exit)
	}
	if want := []string{"echo a", "echo b c"}; !slices.Equal(h.stdout, want) {
		t.Errorf("stdout = %q, want %q", h.stdout, want)
	}
}

func TestNoStdin(t *testing.T) {
	h := startChild(t, context.Background(), "echo-stdin", nil)
	if h.p.Stdin() != nil {
		t.Error("Stdin() without Spec.Stdin: want nil")
	}
	if exit := h.wait(t); !exit.Success() || len(h.stdout) != 0 {
		t.Fatalf("exit = %s, stdout %q; want exit 0 with nothing read from /dev/null", exit, h.stdout)
	}
}

func TestEnvDirAndProcessGroup(t *testing.T) {
	t.Setenv("PROC_TEST_SECRET", "s3cret") // must not leak into the child
	dir := t.TempDir()
	env := append(childEnv("info"), "OPENAI_API_KEY=sk-test")
	h := startChild(t, context.Background(), "info", func(s *Spec) { s.Env = env; s.Dir = dir })
	if exit := h.wait(t); !exit.Success() {
		t.Fatalf("exit = %s", exit)
	}
	var info childInfo
	if len(h.stdout) != 1 || json.Unmarshal([]byte(h.stdout[0]), &info) != nil {
		t.Fatalf("stdout = %q", h.stdout)
	}
	if !slices.Equal(info.Env, env) {
		t.Errorf("child environment = %q, want exactly %q", info.Env, env)
	}
	if got, _ := os.Stat(info.Dir); got == nil || !os.SameFile(got, mustStat(t, dir)) {
		t.Errorf("child dir = %q, want %q", info.Dir, dir)
	}
	if info.PID != h.p.PID() || info.PGID != info.PID || info.PGID == syscall.Getpgrp() {
		t.Errorf("child pid %d pgid %d (parent pgid %d): want its own process group", info.PID, info.PGID, syscall.Getpgrp())
	}
}

func mustStat(tb testing.TB, path string) os.FileInfo {
	tb.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		tb.Fatal(err)
	}
	return fi
}

func TestLongLines(t *testing.T) {
	h := startChild(t, context.Background(), "long", nil)
	if exit := h.wait(t); !exit.Success() {
		t.Fatalf("exit = %s", exit)
	}
	if len(h.stdout) != 1 || len(h.stdout[0]) != 300<<10 {
		t.Errorf("stdout: %d lines, want one of %d bytes", len(h.stdout), 300<<10)
	}
	l := h.findLog(t, strings.Repeat("e", 1<<20))
	if m := l["@message"].(string); len(m) != 1<<20 || l["@level"] != "error" {
		t.Errorf("stderr line re-logged with %d bytes at %v, want %d at error", len(m), l["@level"], 1<<20)
	}
}

func TestGrandchildHoldingPipes(t *testing.T) {
	// The child exits at once but leaves a grandchild holding its stdout and stderr: Wait must
	// still return, after the grace period.
	h := startChild(t, context.Background(), "leak-pipe", func(s *Spec) { s.Grace = 200 * time.Millisecond })
	line := h.waitLine(t, "gpid ")
	gpid, err := strconv.Atoi(strings.TrimPrefix(line, "gpid "))
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(gpid, syscall.SIGKILL)
	if exit := h.wait(t); !exit.Success() {
		t.Errorf("exit = %s, want exit 0", exit)
	}
}

func TestStartErrors(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
	}{
		{name: "no path", spec: Spec{Name: "worker-1"}},
		{name: "missing program", spec: Spec{Name: "worker-1", Path: "/nonexistent/worker"}},
		{name: "missing dir", spec: Spec{Name: "worker-1", Path: "/bin/true", Dir: "/nonexistent"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer goleak.VerifyNone(t)
			p, err := Start(context.Background(), tt.spec)
			if err == nil {
				p.Kill()
				p.Wait()
				t.Fatal("Start: want an error")
			}
			if !strings.Contains(err.Error(), "worker-1") && tt.spec.Path != "" {
				t.Errorf("error %q does not name the child", err)
			}
		})
	}
}

func TestStartCancelledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	self, _ := os.Executable()
	if _, err := Start(ctx, Spec{Name: "worker-1", Path: self}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Start with a cancelled context = %v, want context.Canceled", err)
	}
}

func TestPdeathsig(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Pdeathsig is Linux only")
	}
	// The intermediate child starts a grandchild with Start, then is SIGKILLed: it cannot stop
	// the grandchild itself, so only Pdeathsig can.
	h := startChild(t, context.Background(), "parent", nil)
	line := h.waitLine(t, "gpid ")
	gpid, err := strconv.Atoi(strings.TrimPrefix(line, "gpid "))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(gpid, syscall.SIGKILL) })
	if !alive(gpid) {
		t.Fatalf("grandchild %d is not running before the test", gpid)
	}
	h.p.Kill()
	if exit := h.wait(t); exit.Signal != "SIGKILL" {
		t.Fatalf("intermediate exit = %s", exit)
	}
	for end := time.Now().Add(deadline); alive(gpid); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("grandchild %d still running after its parent was killed", gpid)
		}
	}
}

// alive reports whether pid is a running process. A zombie (dead, not yet reaped by whichever
// process inherited it) counts as gone.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	// The state follows the command name in parentheses: "pid (comm) S ...".
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

func TestExitString(t *testing.T) {
	tests := []struct {
		exit Exit
		want string
		ok   bool
	}{
		{Exit{Code: 0}, "exit 0", true},
		{Exit{Code: 3}, "exit 3", false},
		{Exit{Code: -1, Signal: "SIGKILL"}, "killed by SIGKILL", false},
		{Exit{Code: -1, Err: errors.New("wait: no child")}, "wait failed: wait: no child", false},
	}
	for _, tt := range tests {
		if got := tt.exit.String(); got != tt.want || tt.exit.Success() != tt.ok {
			t.Errorf("%+v: String %q Success %v, want %q %v", tt.exit, got, tt.exit.Success(), tt.want, tt.ok)
		}
	}
}

func TestNilEnvIsEmpty(t *testing.T) {
	// A nil Spec.Env must not hand the parent's environment (API keys and all) to the child.
	t.Setenv("PROC_TEST_SECRET", "s3cret")
	envPath, err := exec.LookPath("env")
	if err != nil {
		t.Skip("no env program")
	}
	var lines []string
	var mu sync.Mutex
	p, err := Start(context.Background(), Spec{Name: "env", Path: envPath, OnStdout: func(l []byte) {
		mu.Lock()
		lines = append(lines, string(l))
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	if exit := p.Wait(); !exit.Success() {
		t.Fatalf("exit = %s", exit)
	}
	if len(lines) != 0 {
		t.Errorf("child environment = %q, want empty", lines)
	}
}
