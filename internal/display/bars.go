package display

import (
	"fmt"
	"io"
	"math"
	"strings"
	"sync/atomic"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/trialcat/trialcat/internal/tally"
	"github.com/trialcat/trialcat/internal/wire"
)

// The bars read their numbers from the run's tally when mpb draws them, so events never
// call into mpb (whose render goroutines would otherwise contend with them). The bars are
// created with total 0, which mpb never considers complete: a bar goes away only when removed.

// frame is what one bar shows in one redraw. mpb draws a bar's parts in one goroutine, in the
// order: prepend decorators, append decorators, the bar, extender lines. The first prepend
// decorator refreshes the frame, so every part of a line shows the same moment.
type frame struct {
	name, count, pct, rate, last string
	done, total                  int64
	extra                        []string // the overall bar's second line, in fields
}

type row struct {
	d       *Display
	overall bool // the overall bar, or a worker slot's
	slot    int
	batch   atomic.Int64 // the batch the slot works on now
	f       frame
}

func (r *row) refresh() {
	if r.overall {
		s := r.d.tally.Snapshot()
		r.f = frame{
			name: "total", count: fmt.Sprintf("%d/%d", s.Done, s.Total),
			pct:  fmt.Sprintf("%.1f%%", percent(s.Done, s.Total)),
			rate: fmtRate(s.Rate) + " rec/min", last: "eta " + etaString(s),
			done: s.Done, total: s.Total, extra: overallExtra(s),
		}
		return
	}
	batch := int(r.batch.Load())
	w, _ := r.d.tally.Worker(batch)
	r.f = frame{
		name: fmt.Sprintf("worker %d · batch %d", r.slot, batch), count: fmt.Sprintf("%d/%d", w.Done, w.Records),
		pct:  fmt.Sprintf("%.1f%%", percent(w.Done, w.Records)),
		rate: fmtRate(w.Rate) + " rec/min", last: fmt.Sprintf("restarts %d", w.Restarts),
		done: w.Done, total: w.Records,
	}
}

// overallExtra is the overall bar's second line, most important first: on a narrow terminal
// the last fields are left out whole.
func overallExtra(s tally.Snapshot) []string {
	f := []string{
		fmt.Sprintf("workers %d", s.Running),
		fmt.Sprintf("failed %d", s.Failed),
		fmt.Sprintf("retries %d (429s %d)", s.Retries, s.RateLimited),
		fmt.Sprintf("restarts %d", s.Restarts),
		"cost " + costString(s, "+?"),
		fmt.Sprintf("tokens %s/%s", fmtCount(s.InputTokens), fmtCount(s.OutputTokens)),
	}
	if a := agentString(s); a != "" {
		f = append(f, a)
	}
	if c := cachedString(s); c != "" {
		f = append(f, c)
	}
	switch {
	case s.Fatal && s.FatalClass == wire.ClassStorage:
		f = append([]string{"CANNOT WRITE THE RUN'S FILES"}, f...)
	case s.Fatal:
		f = append([]string{"API REFUSED THE RUN"}, f...)
	}
	return f
}

// options are the mpb options of a bar: aligned columns (name, count | percent, rate, last),
// and a bar drawn from the frame rather than from mpb's own counters.
func (r *row) options(priority int) []mpb.BarOption {
	// Columns, aligned across the bars: name and count, [bar], percent, rate, last. Names and
	// the last column are left-aligned, numbers right-aligned.
	left, right := decor.WCSyncWidthR, decor.WCSyncWidth
	opts := []mpb.BarOption{
		mpb.BarPriority(priority),
		mpb.BarWidth(barWidth),
		mpb.PrependDecorators(
			decor.Any(func(decor.Statistics) string { r.refresh(); return r.f.name }, decor.WC{C: decor.DSyncSpaceR}),
			decor.Any(func(decor.Statistics) string { return r.f.count }, right),
		),
		mpb.AppendDecorators(
			decor.Any(func(decor.Statistics) string { return r.f.pct }, right),
			decor.Any(func(decor.Statistics) string { return r.f.rate }, decor.WC{C: decor.DSyncSpace}),
			decor.Any(func(decor.Statistics) string { return " " + r.f.last }, left),
		),
		mpb.BarFillerMiddleware(func(base mpb.BarFiller) mpb.BarFiller {
			return mpb.BarFillerFunc(func(w io.Writer, st decor.Statistics) error {
				st.Total, st.Current = r.f.total, min(r.f.done, r.f.total)
				st.Completed = r.f.total > 0 && r.f.done >= r.f.total
				return base.Fill(w, st)
			})
		}),
	}
	if r.overall {
		opts = append(opts, mpb.BarBtmExtender(mpb.BarFillerFunc(func(w io.Writer, st decor.Statistics) error {
			_, err := io.WriteString(w, fit(r.f.extra, st.AvailableWidth)+"\n")
			return err
		})))
	}
	return opts
}

// fit joins the fields that fit in width columns (they are ASCII): a line wider than the
// terminal would wrap and break the redraw.
func fit(fields []string, width int) string {
	var b strings.Builder
	for _, f := range fields {
		if width > 0 && b.Len()+2+len(f) > width {
			break
		}
		b.WriteString("  ")
		b.WriteString(f)
	}
	return b.String()
}

// startBars creates the container and the overall bar; outMu is held.
func (d *Display) startBars() {
	opts := []mpb.ContainerOption{
		mpb.WithOutput(d.out),
		// Out may be a wrapped terminal or a test buffer: always move the cursor and redraw.
		mpb.ForceTTY(), mpb.WithAutoRefresh(),
	}
	if d.refresh > 0 {
		opts = append(opts, mpb.WithRefreshRate(d.refresh))
	}
	if !d.isTerm {
		opts = append(opts, mpb.WithWidth(d.width))
	}
	d.progress = mpb.New(opts...)
	r := &row{d: d, overall: true}
	// The overall bar goes below the workers' bars: when there are more lines than the
	// terminal has rows, mpb leaves out the top ones, and this one must stay.
	d.overall = d.progress.New(0, mpb.BarStyle(), r.options(math.MaxInt32)...)
}

func (d *Display) addBar(slot, batch int) {
	d.outMu.Lock()
	defer d.outMu.Unlock()
	if d.progress == nil {
		return
	}
	if r := d.rows[slot]; r != nil {
		r.batch.Store(int64(batch)) // the slot's next batch: same bar
		return
	}
	r := &row{d: d, slot: slot}
	r.batch.Store(int64(batch))
	b, err := d.progress.Add(0, mpb.BarStyle().Build(), r.options(slot)...)
	if err != nil {
		return // the container has stopped
	}
	d.bars[slot], d.rows[slot] = b, r
}

func (d *Display) removeBar(slot int) {
	d.outMu.Lock()
	defer d.outMu.Unlock()
	if b := d.bars[slot]; b != nil {
		b.Abort(true)
		delete(d.bars, slot)
		delete(d.rows, slot)
	}
}
