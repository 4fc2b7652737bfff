package tally

import (
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/trialcat/trialcat/internal/wire"
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

	Retries int64 // attempts that failed and were retried
	// RetriesByClass splits Retries by error class.
	RetriesByClass map[string]int64
	RateLimited    int64 // of which HTTP 429
	Restarts       int64 // worker restarts after a crash

	InputTokens  int64
	CachedTokens int64
	OutputTokens int64
	CostUSD      float64 // of the answered records whose model has a known price, plus AddCost
	// PassCostUSD is CostUSD without AddCost: what this pass spent.
	PassCostUSD float64
	// RequestSeconds sums the latency of the records answered since Start: the time one
	// sequential worker would have waited for them.
	RequestSeconds float64
	// Hedged counts the answered records whose request was copied (--hedge); HedgeWins those
	// whose copy's answer was kept.
	Hedged, HedgeWins int64
	// AgentRecords counts the records of this pass worked through the agent's loop (answered or
	// failed), AgentTurns their requests, AgentFallbacks those sent to the one-shot prompt.
	AgentRecords, AgentTurns, AgentFallbacks int64
	// FlexRefusals counts the flex tier's refusals of this pass's requests; FlexFellBack the
	// records sent on the default tier after them (--flex-fallback).
	FlexRefusals, FlexFellBack int64
	CostUnknown                bool // some answered record's model has no known price
	Fatal                      bool // a worker reported that the run cannot go on (the API refused it, a full disk)
	// FatalMessage is the first such report: what was refused and what to check; FatalClass its
	// class ("storage" when a worker could not write its files).
	FatalMessage, FatalClass string

	Running int           // worker processes running now
	Elapsed time.Duration // since Start
	Rate    float64       // records done per minute since Start (Skipped not counted)
	ETA     time.Duration // time left at Rate; meaningful only when ETAKnown
	// ETAKnown is false until a record has been done since Start.
	ETAKnown bool

	Workers []WorkerSnapshot // every batch seen so far, in batch order

	// FirstWorkerAt is when the first worker process started; LastExitAt when the last one
	// that ended so far was seen to exit. Zero until then.
	FirstWorkerAt, LastExitAt time.Time
	// FirstRecordAt and LastRecordAt are when the first and the latest record of this pass
	// was reported done (answered or failed). Zero until then.
	FirstRecordAt, LastRecordAt time.Time
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
	ExitCode int
	// Retries counts this batch's failed attempts that were tried again.
	Retries int64
	// MaxRSSKB is the largest peak resident set size its processes reported.
	MaxRSSKB int64
	// Seconds is the time from its first process's start to its last one's end (or now).
	Seconds float64
	// Processes counts the worker processes started on the batch.
	Processes int
	// Slot is the worker slot (0 to --workers-1) that ran the batch last.
	Slot int
	// ReadyMS is the time from its last process's start to that process's start event (its
	// batch read); ExitSeenMS from that process's end event to its exit being seen.
	ReadyMS, ExitSeenMS float64
}

type batchState struct {
	records, done, skipped int64
	sawStart               bool
	firstStart, lastEnd    time.Time
	procs                  int
	endEvent               time.Time // the current process's end event
	readyMS, exitSeenMS    float64
	sawProcStart           bool      // the current process sent its start event
	procStart              time.Time // current process: when it started, and what it did since
	procDone               int64
	restarts, retries      int64
	maxRSS                 int64
	running                bool
	exit                   string
	exitCode               int
	slot                   int
}

// Tally is the run's accounting, owned by the coordinator: what every worker reported and how
// its processes ended. The live display draws it, the --max-cost check reads its spend, and
// summary.json takes its retries, restarts and per-worker figures. All methods are safe for
// concurrent use. The results files stay the record of truth for what was answered.
type Tally struct {
	now func() time.Time
	mu  sync.Mutex
	st  state
}

// New returns an empty tally reading time from now (time.Now when nil).
func New(now func() time.Time) *Tally {
	if now == nil {
		now = time.Now
	}
	return &Tally{now: now, st: state{batches: map[int]*batchState{}}}
}

// Start sets the run's total and starts its clock: rates and the ETA count from here.
func (t *Tally) Start(total int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.st.total, t.st.start, t.st.began = total, t.now(), true
}

type state struct {
	total int64
	start time.Time
	began bool

	succeeded, failed                    int64
	retries, rateLimited, restarts       int64
	inputTokens, cachedTokens, outputTok int64
	cost, priorCost, requestMS           float64
	retriesByClass                       map[string]int64
	costUnknown, fatal                   bool
	fatalMessage, fatalClass             string
	firstRecord, lastRecord              time.Time
	hedged, hedgeWins                    int64
	agentRecords, agentTurns, fallbacks  int64
	flexRefusals, flexFellBack           int64
	// latencies holds the latest answers' latencies (ms) and input tokens, a ring of
	// latencySample, for P90 and the hedging model.
	latencies []latPoint
	nextLat   int

	batches map[int]*batchState
}

// latencySample is how many of the latest latencies P90 looks at.
const latencySample = 4096

// latPoint is one answered record: its latency and its input tokens.
type latPoint struct{ ms, tokens int64 }

func (s *state) noteLatency(ms, tokens int64) {
	p := latPoint{ms: ms, tokens: tokens}
	if len(s.latencies) < latencySample {
		s.latencies = append(s.latencies, p)
		return
	}
	s.latencies[s.nextLat] = p
	s.nextLat = (s.nextLat + 1) % latencySample
}

// P90 is the 90th percentile of the latest answers' latencies, 0 before the first answer.
func (t *Tally) P90() time.Duration {
	t.mu.Lock()
	l := make([]int64, len(t.st.latencies))
	for i, p := range t.st.latencies {
		l[i] = p.ms
	}
	t.mu.Unlock()
	if len(l) == 0 {
		return 0
	}
	slices.Sort(l)
	return time.Duration(l[min(len(l)-1, len(l)*9/10)]) * time.Millisecond
}

// LatencyModel is what the latest answers say a record's latency is: BaseMS plus PerKTokMS a
// thousand input tokens, times a factor that varies from record to record; Median is that
// factor's median, so Median × (BaseMS + PerKTokMS × tokens/1000) is a record's median latency.
type LatencyModel struct {
	BaseMS, PerKTokMS, Median float64
}

// minModelPoints is how many answers a LatencyModel needs.
const minModelPoints = 16

// Latencies fits the latest answers' latencies to their input tokens by least squares (a
// constant, when the slope is not positive or the tokens do not vary); ok is false with fewer
// than minModelPoints answers.
func (t *Tally) Latencies() (m LatencyModel, ok bool) {
	t.mu.Lock()
	pts := slices.Clone(t.st.latencies)
	t.mu.Unlock()
	n := float64(len(pts))
	if len(pts) < minModelPoints {
		return LatencyModel{}, false
	}
	var sx, sy, sxx, sxy float64
	for _, p := range pts {
		x, y := float64(p.tokens)/1000, float64(p.ms)
		sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
	}
	m.BaseMS = sy / n
	if d := n*sxx - sx*sx; d > 0 {
		if b := (n*sxy - sx*sy) / d; b > 0 {
			m.PerKTokMS, m.BaseMS = b, (sy-b*sx)/n
		}
	}
	if m.BaseMS < 0 { // a line through the origin's far side: keep the slope, from zero
		m.BaseMS, m.PerKTokMS = 0, sxy/sxx
	}
	ratios := make([]float64, 0, len(pts))
	for _, p := range pts {
		if pred := m.BaseMS + m.PerKTokMS*float64(p.tokens)/1000; pred > 0 {
			ratios = append(ratios, float64(p.ms)/pred)
		}
	}
	if len(ratios) == 0 {
		return LatencyModel{}, false
	}
	slices.Sort(ratios)
	m.Median = ratios[len(ratios)/2]
	return m, true
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
func (t *Tally) Event(ev wire.Msg) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	s := &t.st
	switch ev.Type {
	case wire.Start:
		b := s.batch(ev.Worker)
		if !b.sawStart {
			// The first start in this run: what is done already was done by an earlier run.
			// A restarted worker's Done also holds what its predecessors did in this run.
			b.sawStart = true
			b.skipped = ev.Done
		}
		b.done = max(b.done, ev.Done)
		b.records = max(b.records, ev.Done+ev.Pending)
		if !b.sawProcStart && !b.procStart.IsZero() {
			b.readyMS = ms(now.Sub(b.procStart))
		}
		b.sawProcStart = true
		b.procStart, b.procDone = now, 0
	case wire.Record:
		if s.firstRecord.IsZero() {
			s.firstRecord = now
		}
		s.lastRecord = now
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
		if ev.OK {
			s.requestMS += float64(ev.LatencyMS)
			if !ev.Cached && !ev.Carried {
				s.noteLatency(ev.LatencyMS, ev.InputTokens)
			}
		}
		if ev.Hedged {
			s.hedged++
		}
		if ev.Turns > 0 {
			s.agentRecords++
			s.agentTurns += int64(ev.Turns)
		}
		if ev.Fallback {
			s.fallbacks++
		}
		s.flexRefusals += int64(ev.FlexRefusals)
		if ev.FlexFellBack {
			s.flexFellBack++
		}
		if ev.HedgeWon {
			s.hedgeWins++
		}
	case wire.Retry:
		s.retries++
		if s.retriesByClass == nil {
			s.retriesByClass = map[string]int64{}
		}
		s.retriesByClass[ev.Class]++
		s.batch(ev.Worker).retries++
		if ev.Status == 429 && ev.Class != wire.ClassFlexUnavailable {
			s.rateLimited++ // the key's limits; a flex refusal is the tier's capacity
		}
	case wire.Fatal:
		if !s.fatal {
			s.fatalMessage, s.fatalClass = ev.Message, ev.Class
		}
		s.fatal = true
	case wire.End:
		b := s.batch(ev.Worker)
		b.maxRSS = max(b.maxRSS, ev.MaxRSSKB)
		b.endEvent = now
	}
}

// WorkerStarted records that a worker process started on a batch of records. Calling it again
// for a batch (a restart) starts the count of its new process.
func (t *Tally) WorkerStarted(batch int, records int64) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.st.batch(batch)
	if records > 0 {
		b.records = records
	}
	if b.firstStart.IsZero() {
		b.firstStart = now
	}
	b.running, b.exit = true, ""
	b.procStart, b.procDone = now, 0
	b.procs++
	b.sawProcStart, b.endEvent = false, time.Time{}
}

// SetSlot records which worker slot runs a batch.
func (t *Tally) SetSlot(batch, slot int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.st.batch(batch).slot = slot
}

// WorkerEnded records that a batch's worker process ended: exit is how ("exit status 0"),
// code its exit code.
func (t *Tally) WorkerEnded(batch int, exit string, code int) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.st.batch(batch)
	b.running, b.exit, b.exitCode, b.lastEnd = false, exit, code, now
	if !b.endEvent.IsZero() {
		b.exitSeenMS = ms(now.Sub(b.endEvent))
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// AddCost adds money spent outside the events, such as by the earlier run that this one
// resumes (so that the budget check sees it); it shows in the cost.
func (t *Tally) AddCost(usd float64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.st.cost += usd
	t.st.priorCost += usd
}

// Restart counts a restart of a batch's crashed worker.
func (t *Tally) Restart(batch int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.st.restarts++
	t.st.batch(batch).restarts++
}

// Snapshot returns the counters now.
func (t *Tally) Snapshot() Snapshot {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.st.snapshot(now)
}

// Spent is the cost so far (CostUSD of a Snapshot, earlier passes included), without building a
// Snapshot: the budget check asks it for every answered record.
func (t *Tally) Spent() float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.st.cost
}

// Worker returns one batch's progress (cheaper than a Snapshot); ok is false for a batch that
// has not started.
func (t *Tally) Worker(n int) (w WorkerSnapshot, ok bool) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	b, ok := t.st.batches[n]
	if !ok {
		return WorkerSnapshot{Batch: n}, false
	}
	return b.snapshot(n, now), true
}

func (s *state) snapshot(now time.Time) Snapshot {
	out := Snapshot{
		Total: s.total, Succeeded: s.succeeded, Failed: s.failed,
		Retries: s.retries, RateLimited: s.rateLimited, Restarts: s.restarts,
		InputTokens: s.inputTokens, CachedTokens: s.cachedTokens, OutputTokens: s.outputTok,
		RetriesByClass: maps.Clone(s.retriesByClass),
		CostUSD:        s.cost, PassCostUSD: s.cost - s.priorCost, RequestSeconds: s.requestMS / 1000, CostUnknown: s.costUnknown, Fatal: s.fatal, FatalMessage: s.fatalMessage, FatalClass: s.fatalClass,
		Workers:       make([]WorkerSnapshot, 0, len(s.batches)),
		FirstRecordAt: s.firstRecord, LastRecordAt: s.lastRecord,
		Hedged: s.hedged, HedgeWins: s.hedgeWins,
		AgentRecords: s.agentRecords, AgentTurns: s.agentTurns, AgentFallbacks: s.fallbacks,
		FlexRefusals: s.flexRefusals, FlexFellBack: s.flexFellBack,
	}
	for n, b := range s.batches {
		if !b.firstStart.IsZero() && (out.FirstWorkerAt.IsZero() || b.firstStart.Before(out.FirstWorkerAt)) {
			out.FirstWorkerAt = b.firstStart
		}
		if b.lastEnd.After(out.LastExitAt) {
			out.LastExitAt = b.lastEnd
		}
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
	w := WorkerSnapshot{Batch: n, Records: b.records, Done: b.done, Restarts: b.restarts, Running: b.running,
		Exit: b.exit, ExitCode: b.exitCode, Retries: b.retries, MaxRSSKB: b.maxRSS,
		Processes: b.procs, ReadyMS: b.readyMS, ExitSeenMS: b.exitSeenMS, Slot: b.slot}
	end := b.lastEnd
	if b.running {
		w.Rate = perMinute(b.procDone, now.Sub(b.procStart))
		end = now
	}
	if !b.firstStart.IsZero() && !end.IsZero() {
		w.Seconds = end.Sub(b.firstStart).Seconds()
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
