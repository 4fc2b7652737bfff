package display

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/trialcat/trialcat/internal/exitcode"
	"github.com/trialcat/trialcat/internal/tally"
	"github.com/trialcat/trialcat/internal/wire"
)

func TestMode(t *testing.T) {
	tests := []struct {
		name   string
		mode   Mode
		isTerm bool
		env    map[string]string
		want   Mode
	}{
		{name: "terminal", mode: Auto, isTerm: true, want: TTY},
		{name: "empty means auto", mode: "", isTerm: true, want: TTY},
		{name: "pipe or file", mode: Auto, want: Plain},
		{name: "CI with a fake terminal", mode: Auto, isTerm: true, env: map[string]string{"CI": "true"}, want: Plain},
		{name: "CI=1", mode: Auto, isTerm: true, env: map[string]string{"CI": "1"}, want: Plain},
		{name: "CI=false", mode: Auto, isTerm: true, env: map[string]string{"CI": "false"}, want: TTY},
		{name: "dumb terminal", mode: Auto, isTerm: true, env: map[string]string{"TERM": "dumb"}, want: Plain},
		{name: "tty asked for on a pipe", mode: TTY, want: TTY},
		{name: "plain asked for on a terminal", mode: Plain, isTerm: true, want: Plain},
		{name: "off", mode: "OFF", isTerm: true, want: Off},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, _, _ := newDisplay(t, tt.mode, func(o *Options) {
				o.IsTerminal = func() bool { return tt.isTerm }
				o.Getenv = func(k string) string { return tt.env[k] }
			})
			if got := d.Mode(); got != tt.want {
				t.Errorf("Mode() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseModeRefusesUnknown(t *testing.T) {
	_, err := ParseMode("bars")
	if !errors.Is(err, exitcode.ErrUsage) || !strings.Contains(err.Error(), `--progress "bars"`) {
		t.Fatalf("ParseMode(bars) = %v, want a usage error naming --progress", err)
	}
	if _, err := New(Options{Mode: "fancy"}); !errors.Is(err, exitcode.ErrUsage) {
		t.Fatalf("New with mode fancy: %v, want a usage error", err)
	}
}

func TestPlainLines(t *testing.T) {
	d, out, clk := newDisplay(t, Plain)
	tick := fakeTicker(d)
	lw := d.LogWriter()
	fmt.Fprintln(lw, "checking input")
	d.Start(400)
	d.WorkerStarted(1, 200)
	d.WorkerStarted(2, 200)
	d.Event(wire.Msg{Type: wire.Start, Worker: 1, Done: 100, Pending: 100})
	d.Event(wire.Msg{Type: wire.Retry, Worker: 1, Status: 429})
	d.Event(wire.Msg{Type: wire.Retry, Worker: 1, Status: 503})
	for range 30 {
		d.Event(wire.Msg{Type: wire.Record, Worker: 1, OK: true, InputTokens: 1000, OutputTokens: 100, CostUSD: 0.001})
	}
	clk.Add(time.Minute)
	lines := 0
	sendTick := func() {
		t.Helper()
		tick <- clk.Now()
		lines++
		waitFor(t, fmt.Sprintf("progress line %d", lines), func() bool { return strings.Count(out.String(), "progress ") == lines })
	}
	sendTick()
	fmt.Fprintln(lw, "worker-2 started")
	d.Event(wire.Msg{Type: wire.Start, Worker: 2, Pending: 200})
	for i := range 30 {
		if i < 10 {
			d.Event(wire.Msg{Type: wire.Record, Worker: 2, Class: "refused"})
			continue
		}
		d.Event(wire.Msg{Type: wire.Record, Worker: 2, OK: true, InputTokens: 1000, OutputTokens: 100, CostUSD: 0.001})
	}
	clk.Add(time.Minute)
	sendTick()
	d.Restart(2)
	d.WorkerEnded(1, "exit status 0")
	clk.Add(2 * time.Minute)
	d.Close()
	fmt.Fprintln(lw, "merged")

	want := strings.Join([]string{
		"checking input",
		"progress 130/400 (32.5%) 30 rec/min eta 9m0s cost $0.0300 tokens 30000/3000 retries 2 (429s 1) failed 0 restarts 0 workers 2",
		"worker-2 started",
		"progress 160/400 (40.0%) 30 rec/min eta 8m0s cost $0.0500 tokens 50000/5000 retries 2 (429s 1) failed 10 restarts 0 workers 2",
		// Close writes the last line.
		"progress 160/400 (40.0%) 15 rec/min eta 16m0s cost $0.0500 tokens 50000/5000 retries 2 (429s 1) failed 10 restarts 1 workers 1",
		"merged",
		"",
	}, "\n")
	if got := out.String(); got != want {
		t.Errorf("output\n%s\nwant\n%s", got, want)
	}
}

func TestOffWritesOnlyLogLines(t *testing.T) {
	d, out, _ := newDisplay(t, Off)
	d.Start(3)
	d.WorkerStarted(1, 3)
	d.Event(wire.Msg{Type: wire.Record, Worker: 1, OK: true})
	fmt.Fprintln(d.LogWriter(), "a log line")
	d.WorkerEnded(1, "exit status 0")
	d.Close()
	if got := out.String(); got != "a log line\n" {
		t.Errorf("output %q, want only the log line", got)
	}
	if s := d.Snapshot(); s.Done != 1 || s.Total != 3 {
		t.Errorf("snapshot %+v, want 1 of 3 done", s)
	}
}

// TestTTYUnderLoad draws bars while many goroutines send events and log lines, as the
// coordinator's per-worker stdout and stderr readers do; run it with -race.
func TestTTYUnderLoad(t *testing.T) {
	d, out, _ := newDisplay(t, TTY)
	const workers, per = 8, 25
	d.Start(workers * per)
	log := hclog.New(&hclog.LoggerOptions{Name: "coordinator", Output: d.LogWriter(), Color: hclog.AutoColor,
		DisableTime: true})

	for w := 1; w <= workers; w++ {
		d.WorkerStarted(w, per)
	}
	waitFor(t, "a bar of each worker", func() bool {
		return strings.Contains(out.String(), fmt.Sprintf("batch %d ", workers))
	})

	var want []string
	var wg sync.WaitGroup
	for w := 1; w <= workers; w++ {
		for i := range per {
			want = append(want, fmt.Sprintf("[INFO]  coordinator.worker-%d: record answered: id=NCT%08d note=%s",
				w, w*1000+i, strings.Repeat("x", 30+i)))
		}
		wg.Go(func() {
			l := log.Named(fmt.Sprintf("worker-%d", w))
			d.Event(wire.Msg{Type: wire.Start, Worker: w, Pending: per})
			for i := range per {
				d.Event(wire.Msg{Type: wire.Retry, Worker: w, Status: 429})
				d.Event(wire.Msg{Type: wire.Record, Worker: w, OK: true, InputTokens: 10, OutputTokens: 2})
				l.Info("record answered", "id", fmt.Sprintf("NCT%08d", w*1000+i), "note", strings.Repeat("x", 30+i))
				_ = d.Snapshot()
			}
		})
	}
	wg.Wait()
	allDone := regexp.MustCompile(fmt.Sprintf(`total +%d/%d`, workers*per, workers*per))
	waitFor(t, "a frame with every record done", func() bool { return allDone.MatchString(out.String()) })
	for w := 1; w <= workers; w++ {
		d.WorkerEnded(w, "exit status 0")
	}
	d.Close()
	fmt.Fprintln(d.LogWriter(), "after close")

	screen := terminal(out.String())
	seen := map[string]int{}
	for _, l := range screen {
		seen[l]++
	}
	for _, l := range want {
		if seen[l] != 1 {
			t.Errorf("log line appears %d times as a whole line, want once: %q", seen[l], l)
		}
	}
	workerBar := regexp.MustCompile(`^worker 3 · batch 3 +\d+/25 \[[=>-]*\] +\d+\.\d% +[\d.]+ rec/min restarts 0 *$`)
	bars := 0
	for _, l := range written(out.String()) {
		if strings.HasPrefix(l, "total ") || strings.HasPrefix(l, "batch ") || strings.HasPrefix(l, "  workers ") {
			if len(l) > DefaultWidth {
				t.Errorf("line wider than the %d columns: %q", DefaultWidth, l)
			}
		}
		if workerBar.MatchString(l) {
			bars++
		}
	}
	if bars == 0 {
		t.Errorf("no bar of batch 3 in the output:\n%s", strings.Join(written(out.String()), "\n"))
	}
	lastTotal := 0
	for i, l := range screen {
		if strings.HasPrefix(l, "total ") {
			lastTotal = i
		}
	}
	for _, l := range screen[:lastTotal] {
		if strings.HasPrefix(l, "total ") || strings.HasPrefix(l, "batch ") || strings.HasPrefix(l, "  workers ") {
			t.Errorf("a frame of the bars was left on screen among the log lines: %q", l)
		}
	}
	// The last frame: the overall bar and its counters stay; the workers' bars are gone.
	last := screen[lastTotal:]
	wantLast := []string{"total 200/200 [", "] 100.0% ", " rec/min eta 0s"} // alone: no other column to align with
	for _, w := range wantLast {
		if !strings.Contains(last[0], w) {
			t.Errorf("last overall bar %q lacks %q", last[0], w)
		}
	}
	if len(last) < 2 || last[1] != "  workers 0  failed 0  retries 200 (429s 200)  restarts 0  cost $0.0000  tokens 2000/400" {
		t.Errorf("last frame:\n%s", strings.Join(last, "\n"))
	}
	if got := strings.Join(last[2:], "\n"); got != "after close\n" {
		t.Errorf("after the last frame: %q, want only the line logged after Close", got)
	}
}

func TestTTYLogLines(t *testing.T) {
	d, out, _ := newDisplay(t, TTY)
	d.Start(1)
	lw := d.LogWriter()
	for _, s := range []string{
		"first half, ", "second half\nthird ", "line\n",
		"\x1b[93mcolored line\n\x1b[0m", // hclog's color: the reset comes after the newline
		"cut short by Close",
	} {
		if n, err := io.WriteString(lw, s); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	d.Close()
	raw := out.String()
	if !strings.Contains(raw, "\x1b[93mcolored line\n\x1b[0m") {
		t.Errorf("the colored line and its reset were split:\n%q", raw)
	}
	seen := map[string]bool{}
	for _, l := range terminal(raw) {
		seen[l] = true
	}
	for _, l := range []string{"first half, second half", "third line", "colored line", "cut short by Close"} {
		if !seen[l] {
			t.Errorf("missing whole line %q in\n%q", l, raw)
		}
	}
}

func TestColorOnlyOnATerminalWithBars(t *testing.T) {
	tests := []struct {
		mode   Mode
		isTerm bool
		want   bool
	}{
		{TTY, true, true}, {TTY, false, false}, {Plain, true, false}, {Auto, false, false}, {Off, true, false},
	}
	for _, tt := range tests {
		d, _, _ := newDisplay(t, tt.mode, func(o *Options) { o.IsTerminal = func() bool { return tt.isTerm } })
		sc, ok := d.LogWriter().(interface{ SupportsColor() bool })
		if !ok || sc.SupportsColor() != tt.want {
			t.Errorf("mode %s, terminal %v: SupportsColor %v, want %v", tt.mode, tt.isTerm, ok && sc.SupportsColor(), tt.want)
		}
	}
	// hclog asks: a plain log has no escape codes.
	d, out, _ := newDisplay(t, Plain)
	hclog.New(&hclog.LoggerOptions{Output: d.LogWriter(), Color: hclog.AutoColor}).Warn("careful")
	if strings.Contains(out.String(), "\x1b") {
		t.Errorf("plain log has escape codes: %q", out.String())
	}
}

func TestCloseIsSafe(t *testing.T) {
	for _, mode := range []Mode{TTY, Plain, Off} {
		t.Run(string(mode), func(t *testing.T) {
			t.Run("twice", func(t *testing.T) {
				d, out, _ := newDisplay(t, mode)
				d.Start(2)
				d.WorkerStarted(1, 2)
				d.Close()
				before := out.String()
				d.Close()
				if out.String() != before {
					t.Errorf("second Close wrote %q", strings.TrimPrefix(out.String(), before))
				}
			})
			t.Run("concurrently with events", func(t *testing.T) {
				d, _, _ := newDisplay(t, mode)
				d.Start(100)
				var wg sync.WaitGroup
				for w := range 4 {
					wg.Go(func() {
						d.WorkerStarted(w, 25)
						for range 25 {
							d.Event(wire.Msg{Type: wire.Record, Worker: w, OK: true})
							fmt.Fprintln(d.LogWriter(), "line")
						}
						d.WorkerEnded(w, "exit status 0")
					})
				}
				wg.Go(d.Close)
				wg.Go(d.Close)
				wg.Wait()
				if got := d.Snapshot().Done; got != 100 {
					t.Errorf("done %d after Close, want 100: the tally keeps counting", got)
				}
			})
			t.Run("without Start", func(t *testing.T) {
				d, out, _ := newDisplay(t, mode)
				d.WorkerStarted(1, 1)
				d.Close()
				d.Start(1) // too late: shows nothing
				d.WorkerStarted(2, 1)
				if out.Len() != 0 {
					t.Errorf("output %q, want none", out.String())
				}
			})
		})
	}
	t.Run("nil", func(t *testing.T) {
		var d *Display
		d.Start(tally.New(nil))
		d.WorkerStarted(1, 1)
		d.WorkerEnded(1)
		fmt.Fprintln(d.LogWriter(), "discarded")
		if d.Mode() != Off {
			t.Error("nil display has a mode")
		}
		d.Close()
	})
}

func TestFitDropsWholeFields(t *testing.T) {
	fields := []string{"workers 20", "failed 5", "retries 21 (429s 11)"}
	tests := []struct {
		width int
		want  string
	}{
		{200, "  workers 20  failed 5  retries 21 (429s 11)"},
		{44, "  workers 20  failed 5  retries 21 (429s 11)"},
		{43, "  workers 20  failed 5"},
		{11, ""},
	}
	for _, tt := range tests {
		if got := fit(fields, tt.width); got != tt.want {
			t.Errorf("fit(%d) = %q, want %q", tt.width, got, tt.want)
		}
	}
}

func TestOnlyEscapes(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"", true}, {"\x1b[0m", true}, {"\x1b[0m\x1b[39m", true}, {"\x1b[0mx", false}, {"x", false}, {"\x1b[", false},
	}
	for _, tt := range tests {
		if got := onlyEscapes([]byte(tt.in)); got != tt.want {
			t.Errorf("onlyEscapes(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestPlainLineShowsTheAgent(t *testing.T) {
	s := tally.Snapshot{Done: 2, Total: 4, AgentRecords: 2, AgentTurns: 7, AgentFallbacks: 1}
	if got := Line(s); !strings.HasSuffix(got, " agent turns 7 (3.5/record) fallbacks 1") {
		t.Errorf("line = %q", got)
	}
	if got := Line(tally.Snapshot{Done: 2, Total: 4}); strings.Contains(got, "agent") {
		t.Errorf("a one-shot run's line mentions the agent: %q", got)
	}
}
