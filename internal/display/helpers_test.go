package display

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/trialcat/trialcat/internal/tally"
	"github.com/trialcat/trialcat/internal/testclock"
	"github.com/trialcat/trialcat/internal/testkit"
	"github.com/trialcat/trialcat/internal/wire"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newClock() *testclock.Clock { return testclock.New(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)) }

// testRun is a Display with the tally it draws, fed the way the coordinator feeds both.
type testRun struct {
	*Display
	tl *tally.Tally
}

func (r *testRun) Start(total int64) {
	r.tl.Start(total)
	r.Display.Start(r.tl)
}

func (r *testRun) WorkerStarted(batch int, records int64) {
	r.tl.WorkerStarted(batch, records)
	r.Display.WorkerStarted(batch, batch) // one slot per batch in these tests
}

func (r *testRun) WorkerEnded(batch int, exit string) {
	r.tl.WorkerEnded(batch, exit, 0)
	r.Display.WorkerEnded(batch)
}

func (r *testRun) Event(m wire.Msg)         { r.tl.Event(m) }
func (r *testRun) Restart(batch int)        { r.tl.Restart(batch) }
func (r *testRun) Snapshot() tally.Snapshot { return r.tl.Snapshot() }

// newDisplay returns a Display writing to a buffer, with a stub clock, not started.
func newDisplay(tb testing.TB, mode Mode, mods ...func(*Options)) (*testRun, *testkit.Buffer, *testclock.Clock) {
	tb.Helper()
	out, clk := &testkit.Buffer{}, newClock()
	opts := Options{
		Mode: mode, Out: out,
		IsTerminal: func() bool { return false },
		Getenv:     func(string) string { return "" },
	}
	for _, m := range mods {
		m(&opts)
	}
	d, err := New(opts)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	d.refresh = 5 * time.Millisecond
	tb.Cleanup(d.Close)
	return &testRun{Display: d, tl: tally.New(clk.Now)}, out, clk
}

// fakeTicker replaces the plain line's ticker with a channel the test sends on.
func fakeTicker(d *testRun) chan time.Time {
	c := make(chan time.Time)
	d.ticker = func(time.Duration) (<-chan time.Time, func()) { return c, func() {} }
	return c
}

var csi = regexp.MustCompile("^\x1b\\[([0-9;]*)([A-Za-z])")

// terminal replays output the way a terminal shows it, scrollback included: text, newlines,
// cursor up (CSI n A) and erase below (CSI J), which is all mpb uses. Colors are dropped.
// A log line that a redraw overwrites is gone from its screen, as it would be from a user's.
func terminal(out string) []string {
	rows := []string{""}
	row, col := 0, 0
	for len(out) > 0 {
		if m := csi.FindStringSubmatch(out); m != nil {
			out = out[len(m[0]):]
			switch m[2] {
			case "A":
				n, _ := strconv.Atoi(m[1])
				row = max(row-max(n, 1), 0)
			case "J":
				rows = rows[:row+1]
				rows[row] = rows[row][:min(col, len(rows[row]))]
			}
			continue
		}
		c := out[0]
		out = out[1:]
		if c == '\n' {
			row, col = row+1, 0
			if row == len(rows) {
				rows = append(rows, "")
			}
			continue
		}
		line := []byte(rows[row])
		for len(line) <= col {
			line = append(line, ' ')
		}
		line[col] = c
		rows[row], col = string(line), col+1
	}
	return rows
}

var anyCSI = regexp.MustCompile("\x1b\\[[0-9;]*[A-Za-z]")

// written is every line ever written, each frame of the bars included, escapes removed.
func written(out string) []string {
	return strings.Split(anyCSI.ReplaceAllString(out, ""), "\n")
}

// waitFor polls until cond holds, failing the test after a generous deadline.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
