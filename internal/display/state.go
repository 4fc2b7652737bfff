package display

import (
	"fmt"
	"sort"
	"time"

	"github.com/trialcat/trialcat/internal/event"
)

// Snapshot is the progress so far.
type Snapshot struct {
	Total int64 // records in the run
	// Done counts records with an outcome: Skipped, plus those answered or failed since Start
	// (including rows a crashed worker wrote but could not report, found when it restarted).
	Done      int64
	Skipped   int64 // done by an earlier run (resume)
	Succeeded int64 // answered since Start
	Failed    int64 // failed for good since Start

	Retries     int64 // attempts that failed and were retried
	RateLimited int64 // of which HTTP 429
	Restarts    int64 // worker restarts after a crash

	InputTokens  int64
	CachedTokens int64
	OutputTokens int64
	CostUSD      float64 // of the answered records whose model has a known price, plus AddCost
	CostUnknown  bool    // some answered record's model has no known price
	Fatal        bool    // a worker reported that the API refused the run

	Running int           // worker processes running now
	Elapsed time.Duration // since Start
	Rate    float64       // records done per minute since Start (Skipped not counted)
	ETA     time.Duration // time left at Rate; meaningful only when ETAKnown
	// ETAKnown is false until a record has been done since Start.
	ETAKnown bool

	Workers []WorkerSnapshot // every batch seen so far, in batch order
}

// WorkerSnapshot is the progress of one batch.
type WorkerSnapshot struct {
	Batch    int
	Records  int64   // records in the batch
	Done     int64   // of them with an outcome, including those of earlier runs
	Rate     float64 // records per minute of its current process
	Restarts int64
	Running  bool
	Exit     string // how its last process ended, as given to WorkerEnded
}

type batchState struct {
	records, done, skipped int64
	sawStart               bool
	procStart              time.Time // current process: when it started, and what it did since
	procDone               int64
	restarts               int64
	running                bool
	exit                   string
}

type state struct {
	total int64
	start time.Time
	began bool

	succeeded, failed                    int64
	retries, rateLimited, restarts       int64
	inputTokens, cachedTokens, outputTok int64
	cost                                 float64
	costUnknown, fatal                   bool

	batches map[int]*batchState
}

func (s *state) batch(n int) *batchState {
	b, ok := s.batches[n]
	if !ok {
		b = &batchState{}
		s.batches[n] = b
	}
	return b
}

// Event counts one event of a worker. ev.Worker must be the batch number (the coordinator
// knows it better than the worker's output does: set it before calling).
func (d *Display) Event(ev event.Event) {
	if d == nil {
		return
	}
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	s := &d.st
	switch ev.Type {
	case event.Start:
		b := s.batch(ev.Worker)
		if !b.sawStart {
			// The first start in this run: what is done already was done by an earlier run.
			// A restarted worker's Done also holds what its predecessors did in this run.
			b.sawStart = true
			b.skipped = ev.Done
		}
		b.done = max(b.done, ev.Done)
		b.records = max(b.records, ev.Done+ev.Pending)
		b.procStart, b.procDone = now, 0
	case event.Record:
		b := s.batch(ev.Worker)
		b.done++
		b.procDone++
		if ev.OK {
			s.succeeded++
		} else {
			s.failed++
		}
		s.inputTokens += ev.InputTokens
		s.cachedTokens += ev.CachedTokens
		s.outputTok += ev.OutputTokens
		s.cost += ev.CostUSD
		s.costUnknown = s.costUnknown || ev.CostUnknown
	case event.Retry:
		s.retries++
		if ev.Status == 429 {
			s.rateLimited++
		}
	case event.Fatal:
		s.fatal = true
	}
}

// WorkerStarted records that a worker process started on a batch of records; in TTY mode its
// bar appears. Calling it again for a running batch (a restart) keeps the bar.
func (d *Display) WorkerStarted(batch int, records int64) {
	if d == nil {
		return
	}
	now := d.now()
	d.mu.Lock()
	b := d.st.batch(batch)
	if records > 0 {
		b.records = records
	}
	b.running, b.exit = true, ""
	b.procStart, b.procDone = now, 0
	d.mu.Unlock()
	d.addBar(batch)
}

// WorkerEnded records that a batch's worker ended (exit is how, e.g. "exit status 0"); in TTY
// mode its bar goes away.
func (d *Display) WorkerEnded(batch int, exit string) {
	if d == nil {
		return
	}
	d.mu.Lock()
	b := d.st.batch(batch)
	b.running, b.exit = false, exit
	d.mu.Unlock()
	d.removeBar(batch)
}

// AddCost adds money spent outside the events, such as by the earlier run that this one
// resumes (so that a budget check on Snapshot().CostUSD sees it); it shows in the cost.
func (d *Display) AddCost(usd float64) {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.st.cost += usd
}

// Restart counts a restart of a batch's crashed worker.
func (d *Display) Restart(batch int) {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.st.restarts++
	d.st.batch(batch).restarts++
}

// Snapshot returns the counters now.
func (d *Display) Snapshot() Snapshot {
	if d == nil {
		return Snapshot{}
	}
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.st.snapshot(now)
}

// worker returns one batch's progress (cheaper than a Snapshot, for its bar).
func (d *Display) worker(n int) WorkerSnapshot {
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	b, ok := d.st.batches[n]
	if !ok {
		return WorkerSnapshot{Batch: n}
	}
	return b.snapshot(n, now)
}

func (s *state) snapshot(now time.Time) Snapshot {
	out := Snapshot{
		Total: s.total, Succeeded: s.succeeded, Failed: s.failed,
		Retries: s.retries, RateLimited: s.rateLimited, Restarts: s.restarts,
		InputTokens: s.inputTokens, CachedTokens: s.cachedTokens, OutputTokens: s.outputTok,
		CostUSD: s.cost, CostUnknown: s.costUnknown, Fatal: s.fatal,
		Workers: make([]WorkerSnapshot, 0, len(s.batches)),
	}
	for n, b := range s.batches {
		out.Done += b.done
		out.Skipped += b.skipped
		if b.running {
			out.Running++
		}
		out.Workers = append(out.Workers, b.snapshot(n, now))
	}
	sort.Slice(out.Workers, func(i, j int) bool { return out.Workers[i].Batch < out.Workers[j].Batch })
	if s.began {
		out.Elapsed = now.Sub(s.start)
	}
	out.Rate = perMinute(out.Done-out.Skipped, out.Elapsed)
	out.ETA, out.ETAKnown = eta(out.Total-out.Done, out.Rate)
	return out
}

func (b *batchState) snapshot(n int, now time.Time) WorkerSnapshot {
	w := WorkerSnapshot{Batch: n, Records: b.records, Done: b.done, Restarts: b.restarts, Running: b.running, Exit: b.exit}
	if b.running {
		w.Rate = perMinute(b.procDone, now.Sub(b.procStart))
	}
	return w
}

func perMinute(n int64, elapsed time.Duration) float64 {
	if n <= 0 || elapsed <= 0 {
		return 0
	}
	return float64(n) / elapsed.Minutes()
}

// eta is the time to do left records at rate records per minute.
func eta(left int64, rate float64) (time.Duration, bool) {
	if left <= 0 {
		return 0, true
	}
	if rate <= 0 {
		return 0, false
	}
	return time.Duration(float64(left) / rate * float64(time.Minute)), true
}

// Line is the plain progress line, one greppable line with every counter:
//
//	progress 240/400 (60.0%) 118 rec/min eta 1m21s cost $0.0123 tokens 51234/8123 retries 3 (429s 1) failed 2 restarts 0 workers 20
//
// The ETA reads "unknown" until a record is done; a cost reads "$0.0123+unknown" when some
// model's price is unknown; tokens are input/output.
func (s Snapshot) Line() string {
	return fmt.Sprintf("progress %d/%d (%.1f%%) %s rec/min eta %s cost %s tokens %d/%d retries %d (429s %d) failed %d restarts %d workers %d",
		s.Done, s.Total, percent(s.Done, s.Total), fmtRate(s.Rate), s.etaString(), s.costString("+unknown"),
		s.InputTokens, s.OutputTokens, s.Retries, s.RateLimited, s.Failed, s.Restarts, s.Running)
}

func (s Snapshot) etaString() string {
	if !s.ETAKnown {
		return "unknown"
	}
	return fmtDuration(s.ETA)
}

func (s Snapshot) costString(unknown string) string {
	c := fmt.Sprintf("$%.4f", s.CostUSD)
	if s.CostUnknown {
		c += unknown
	}
	return c
}

func percent(a, b int64) float64 {
	if b <= 0 {
		return 100
	}
	return 100 * float64(a) / float64(b)
}

func fmtRate(r float64) string {
	if r < 10 {
		return fmt.Sprintf("%.1f", r)
	}
	return fmt.Sprintf("%.0f", r)
}

// fmtDuration is a short duration for people: 45s, 1m21s, 2h5m.
func fmtDuration(d time.Duration) string {
	d = d.Round(time.Second)
	h, m, s := d/time.Hour, d%time.Hour/time.Minute, d%time.Minute/time.Second
	switch {
	case h > 0:
		return fmt.Sprintf("%dh%dm", h, m)
	case m > 0:
		return fmt.Sprintf("%dm%ds", m, s)
	}
	return fmt.Sprintf("%ds", s)
}

// fmtCount shortens big counts for the bars: 9999, 51.2k, 3.40M.
func fmtCount(n int64) string {
	switch {
	case n < 10_000:
		return fmt.Sprint(n)
	case n < 1_000_000:
		return fmt.Sprintf("%.1fk", float64(n)/1e3)
	}
	return fmt.Sprintf("%.2fM", float64(n)/1e6)
}
