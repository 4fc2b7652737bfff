package display

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/vbauerster/mpb/v8"

	"github.com/trialcat/trialcat/internal/exitcode"
	"github.com/trialcat/trialcat/internal/tally"
)

// Mode is how progress is shown: the value of --progress.
type Mode string

// Modes.
const (
	Auto  Mode = "auto"  // TTY when Out is a terminal, CI is not set and TERM is not dumb; else Plain
	TTY   Mode = "tty"   // live bars, redrawn in place
	Plain Mode = "plain" // one progress line every Options.Every
	Off   Mode = "off"   // nothing; the counters are still kept
)

// Defaults.
const (
	DefaultEvery = 10 * time.Second // interval of the plain progress line
	DefaultWidth = 100              // line width in TTY mode when Out is not a terminal
	barWidth     = 40               // width of a bar's [===>---] part, at most
	maxPartial   = 64 << 10         // a log "line" longer than this is printed in pieces
)

// ParseMode reads the value of --progress.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.ToLower(strings.TrimSpace(s))); m {
	case Auto, TTY, Plain, Off:
		return m, nil
	case "":
		return Auto, nil
	}
	return "", fmt.Errorf("--progress %q: want auto, tty, plain or off: %w", s, exitcode.ErrUsage)
}

// Options configure a Display. Only Mode matters in production; the rest default to the real
// world and exist for tests.
type Options struct {
	Mode  Mode          // "" means Auto
	Out   io.Writer     // where progress and log lines go; default os.Stderr
	Every time.Duration // interval of the plain line; default DefaultEvery
	// Width is the line width in TTY mode when Out is not a terminal (a terminal's own width is
	// used otherwise); default DefaultWidth.
	Width int
	// IsTerminal reports whether Out is a terminal; default: isatty on Out when it is a file.
	IsTerminal func() bool
	Getenv     func(string) string // default os.Getenv; Auto reads CI and TERM
}

// Display shows live progress: it draws a run's tally and keeps no counts of its own. Create it
// with New before the logger (the logger writes to LogWriter), call Start with the run's tally,
// tell it which workers run (for their bars), and Close it before printing anything else to the
// terminal. All methods are safe for concurrent use, and a nil *Display does nothing.
type Display struct {
	mode    Mode
	out     io.Writer
	every   time.Duration
	width   int
	isTerm  bool
	color   bool
	refresh time.Duration                                  // TTY redraw interval; 0 is mpb's default
	ticker  func(time.Duration) (<-chan time.Time, func()) // plain-line ticker; replaced in tests

	tally *tally.Tally // set by Start; read when drawing

	// outMu guards the output side: what is on screen, the partial log line and the plain
	// lines. mpb's own goroutines never take it.
	outMu    sync.Mutex
	started  bool
	closed   bool
	progress *mpb.Progress // non-nil while bars are on screen
	overall  *mpb.Bar
	bars     map[int]*mpb.Bar // by worker slot
	rows     map[int]*row
	partial  []byte

	stopTick  chan struct{}
	tickDone  chan struct{}
	closeOnce sync.Once
}

// New returns a Display that shows nothing until Start. It fails only on an unknown Mode.
func New(opts Options) (*Display, error) {
	mode, err := ParseMode(string(opts.Mode))
	if err != nil {
		return nil, err
	}
	if opts.Out == nil {
		opts.Out = os.Stderr
	}
	if opts.Every <= 0 {
		opts.Every = DefaultEvery
	}
	if opts.Width <= 0 {
		opts.Width = DefaultWidth
	}
	if opts.IsTerminal == nil {
		out := opts.Out
		opts.IsTerminal = func() bool { return fileIsTerminal(out) }
	}
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	isTerm := opts.IsTerminal()
	if mode == Auto {
		mode = resolve(isTerm, opts.Getenv)
	}
	d := &Display{
		mode: mode, out: opts.Out, every: opts.Every, width: opts.Width, isTerm: isTerm,
		color: mode == TTY && isTerm, ticker: realTicker,
		bars: map[int]*mpb.Bar{}, rows: map[int]*row{},
	}
	return d, nil
}

// resolve picks the mode for Auto: bars need a terminal that understands cursor movement, and
// CI logs want plain lines even when the runner fakes a terminal.
func resolve(isTerm bool, getenv func(string) string) Mode {
	if !isTerm || getenv("TERM") == "dumb" {
		return Plain
	}
	if ci, err := strconv.ParseBool(getenv("CI")); err == nil && ci {
		return Plain
	}
	return TTY
}

func fileIsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

func realTicker(every time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(every)
	return t.C, t.Stop
}

// Mode is the mode in use: TTY, Plain or Off (Auto is resolved by New).
func (d *Display) Mode() Mode {
	if d == nil {
		return Off
	}
	return d.mode
}

// Start begins showing the progress in t: the bars in TTY mode, the ticker of the plain line in
// Plain mode. Only the first call, before Close, does anything.
func (d *Display) Start(t *tally.Tally) {
	if d == nil || t == nil {
		return
	}
	d.outMu.Lock()
	defer d.outMu.Unlock()
	if d.started || d.closed {
		return
	}
	d.started = true
	d.tally = t
	switch d.mode {
	case TTY:
		d.startBars()
	case Plain:
		d.stopTick = make(chan struct{})
		d.tickDone = make(chan struct{})
		c, stop := d.ticker(d.every)
		go d.tick(c, stop)
	}
}

func (d *Display) tick(c <-chan time.Time, stop func()) {
	defer close(d.tickDone)
	defer stop()
	for {
		select {
		case <-d.stopTick:
			return
		case <-c:
			d.writeLine()
		}
	}
}

// writeLine writes the plain progress line.
func (d *Display) writeLine() {
	line := Line(d.tally.Snapshot()) + "\n"
	d.outMu.Lock()
	defer d.outMu.Unlock()
	_, _ = io.WriteString(d.out, line)
}

// Close stops the bars or the ticker. In TTY mode the overall bar's last state stays on
// screen; in Plain mode a last progress line is written. Log lines written afterwards go
// straight to Out. Safe to call more than once; counters still update after Close.
func (d *Display) Close() {
	if d == nil {
		return
	}
	d.closeOnce.Do(func() {
		d.outMu.Lock()
		started, stop, done := d.started, d.stopTick, d.tickDone
		d.closed = true
		d.outMu.Unlock()
		if stop != nil {
			// Not under outMu: the ticker takes it to write a line.
			close(stop)
			<-done
		}

		d.outMu.Lock()
		defer d.outMu.Unlock()
		// Holding outMu while the bars wind down keeps log lines from being written into a
		// container that will not render again; they wait and then go straight to Out.
		if d.progress != nil {
			for n, b := range d.bars {
				b.Abort(true)
				delete(d.bars, n)
				delete(d.rows, n)
			}
			d.overall.Abort(false)
			d.progress.Wait()
			d.progress, d.overall = nil, nil
		}
		if len(d.partial) > 0 {
			_, _ = d.out.Write(append(d.partial, '\n'))
			d.partial = nil
		}
		if started && d.mode == Plain {
			_, _ = io.WriteString(d.out, Line(d.tally.Snapshot())+"\n")
		}
	})
}

// WorkerStarted shows the bar of worker slot (one of --workers) working on batch (TTY mode): one
// bar per slot, however many batches it works through, so the bars fit a small terminal.
func (d *Display) WorkerStarted(slot, batch int) {
	if d != nil {
		d.addBar(slot, batch)
	}
}

// WorkerEnded takes a slot's bar away once it has no batch left (TTY mode).
func (d *Display) WorkerEnded(slot int) {
	if d != nil {
		d.removeBar(slot)
	}
}

// LogWriter is where the coordinator's log output must go (hclog's Output). While bars are on
// screen, whole lines are printed above them at the next redraw (an unfinished line waits for
// its end); otherwise writes go straight to Out. hclog's AutoColor asks it whether to color.
func (d *Display) LogWriter() io.Writer {
	if d == nil {
		return io.Discard
	}
	return logWriter{d}
}

type logWriter struct{ d *Display }

func (w logWriter) Write(b []byte) (int, error) { return w.d.writeLog(b) }

// SupportsColor tells hclog to color only on a terminal that shows bars.
func (w logWriter) SupportsColor() bool { return w.d.color }

func (d *Display) writeLog(b []byte) (int, error) {
	d.outMu.Lock()
	defer d.outMu.Unlock()
	if d.progress == nil {
		return d.out.Write(b)
	}
	d.partial = append(d.partial, b...)
	end := bytes.LastIndexByte(d.partial, '\n') + 1
	switch {
	case end > 0 && onlyEscapes(d.partial[end:]):
		// A colored line ends with a color reset after its newline: keep them together.
		end = len(d.partial)
	case end == 0 && len(d.partial) > maxPartial:
		d.partial = append(d.partial, '\n')
		end = len(d.partial)
	case end == 0:
		return len(b), nil
	}
	// Progress.Write copies the bytes into the container's buffer before it returns; they are
	// printed above the bars at the next redraw.
	if _, err := d.progress.Write(d.partial[:end]); err != nil {
		// The container has stopped (a render error): nothing is drawn any more.
		if _, err := d.out.Write(d.partial[:end]); err != nil {
			return 0, err
		}
	}
	d.partial = append(d.partial[:0], d.partial[end:]...)
	return len(b), nil
}

// onlyEscapes reports whether b holds nothing but ANSI CSI sequences (such as a color reset).
func onlyEscapes(b []byte) bool {
	for len(b) > 0 {
		if len(b) < 2 || b[0] != 0x1b || b[1] != '[' {
			return false
		}
		i := 2
		for i < len(b) && (b[i] < 0x40 || b[i] > 0x7e) {
			i++
		}
		if i == len(b) {
			return false
		}
		b = b[i+1:]
	}
	return true
}
