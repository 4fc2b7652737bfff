package ratelimit

import (
	"context"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Window is the period RPM and TPM are stated for.
const Window = time.Minute

// Defaults of Config and of Feedback handling.
const (
	// DefaultBurst is the budget a limiter may grant at once after being idle: small against a
	// server's own burst allowance, big enough that requests and tokens, when both limits
	// nearly bind, do not lose each other's refill while one of them waits.
	DefaultBurst = 250 * time.Millisecond
	// DefaultMargin is added to the minute a limit is spread over.
	DefaultMargin = time.Second
	// DefaultPause is the pause after a 429 without retry-after.
	DefaultPause = time.Second
	// MaxPause caps a pause asked for by a server.
	MaxPause = time.Minute
	// probeHold is how long the other requests wait for a probe's answer during an outage
	// before another request probes (the probe's worker may have died).
	probeHold = 30 * time.Second
)

// How 429s steer the rates: multiplicative decrease, additive recovery.
const (
	decreaseFactor = 0.8             // rates times this on a 429 ...
	decreaseHold   = 2 * time.Second // ... at most once per this, so one burst of 429s counts once
	minFactor      = 0.1             // never below this share of the configured rates
	recoverStep    = 0.05            // share given back ...
	recoverEvery   = 5 * time.Second // ... per this long without a 429
)

// Permits is what a worker needs from a budget: a Limiter in process, or a Client of the
// coordinator's Server.
type Permits interface {
	// Wait blocks until a request of tokens estimated tokens may be sent, or ctx ends.
	Wait(ctx context.Context, tokens int) error
	// Reconcile corrects the token budget once the server reported the request's real usage.
	Reconcile(estimated, actual int)
	// Feedback passes on what an answer said about the rate limits.
	Feedback(fb Feedback)
}

var (
	_ Permits = (*Limiter)(nil)
	_ Permits = (*Client)(nil)
)

// Config is a run's budget.
type Config struct {
	// RPM is the run's requests per minute, all workers together; 0 means unlimited.
	RPM int
	// TPM is the run's tokens per minute (as Wait counts them), all workers together; 0 means
	// unlimited.
	TPM int
	// Burst is how much budget, in time at the full rate, may be granted at once after an idle
	// spell; at least one request. A request for more tokens than that is granted when the
	// bucket is full, and the requests after it wait until it is paid for. 0 means
	// DefaultBurst.
	Burst time.Duration
	// Margin is added to the minute each limit is spread over, for the spread of delays between
	// a grant and the request's arrival at the server; it costs Margin/(1m+Margin) of the
	// budget. 0 means DefaultMargin.
	Margin time.Duration
	// Clock is the time source; nil means the system clock.
	Clock Clock
	// OnLearn, when set, is told when the limiter adopts a limit the server stated in its
	// x-ratelimit-limit-* headers (what is "requests" or "tokens", limit per minute). It is
	// called with the limiter locked: it must not call the limiter.
	OnLearn func(what string, limit int)
}

// Limiter is an in-process budget of requests and tokens, safe for concurrent use. See the
// package documentation for how it paces, how it guards the minute, and how it adapts.
type Limiter struct {
	clock      Clock
	rpm, tpm   float64
	burst      time.Duration
	span       time.Duration // Window + Margin: each limit is spread over this
	configured bool          // rpm or tpm set

	mu          sync.Mutex
	queue       []*waiter // FIFO; only the head may be granted
	req, tok    bucket
	log         grantLog
	factor      float64 // share of the configured rates in force, in [minFactor, 1]
	lastCut     time.Time
	nextRecover time.Time
	pausedUntil time.Time
	// probing is set by an outage: one grant at a time (probeOut, granted at probeAt) until an
	// answer comes back.
	probing, probeOut bool
	probeAt           time.Time
	reqHint           hint
	tokHint           hint
	timer             Timer
	timerAt           time.Time
	timerGen          uint64
	stats             State

	onLearn func(what string, limit int)
	// limited is set once Free has been false: a limiter that was limited stays so.
	limited bool

	// observe, when set (by tests), sees every grant under the lock.
	observe func(at time.Time, tokens int)
}

type waiter struct {
	tokens int
	ready  chan struct{} // closed when granted
}

// bucket is a continuously refilling budget; level may go below zero (debt) after a grant
// bigger than its capacity.
type bucket struct {
	level float64
	last  time.Time
}

// hint is what the server last said it still allows, minus what was granted since.
type hint struct {
	set       bool
	at        time.Time
	remaining float64 // left now
	initial   float64 // left when the answer came
	limit     float64 // the server's limit; 0 unknown
	reset     time.Duration
}

// State is a snapshot of a limiter, for progress lines and tests.
type State struct {
	// Factor is the share of the configured rates in force: 1 normally, lower after 429s.
	Factor float64
	// RPM and TPM are the limits in force, configured or learned from the server; 0 unlimited.
	RPM, TPM int
	// Paused is how long grants stay paused after a 429; 0 when they are not.
	Paused time.Duration
	// Waiting counts callers waiting for a grant.
	Waiting int
	// Granted counts grants; GrantedTokens sums their tokens, corrected by Reconcile.
	Granted, GrantedTokens int64
	// RateLimited counts 429 answers reported through Feedback.
	RateLimited int64
}

// New returns a limiter for cfg. Negative limits count as 0 (unlimited).
func New(cfg Config) *Limiter {
	l := &Limiter{
		clock:   cfg.Clock,
		rpm:     float64(max(cfg.RPM, 0)),
		tpm:     float64(max(cfg.TPM, 0)),
		burst:   cfg.Burst,
		factor:  1,
		onLearn: cfg.OnLearn,
	}
	if l.clock == nil {
		l.clock = SystemClock{}
	}
	if l.burst <= 0 {
		l.burst = DefaultBurst
	}
	margin := cfg.Margin
	if margin <= 0 {
		margin = DefaultMargin
	}
	l.span = Window + margin
	l.configured = l.rpm > 0 || l.tpm > 0
	now := l.clock.Now()
	// Start with a full (small) bucket: the first requests go at once, and no more than Burst.
	l.req = bucket{level: l.capacity(l.rate(l.rpm)), last: now}
	l.tok = bucket{level: l.capacity(l.rate(l.tpm)), last: now}
	return l
}

// rate is a limit per minute spread over the span, at the current factor, per second.
func (l *Limiter) rate(limit float64) float64 { return limit * l.factor / l.span.Seconds() }

// capacity is the most a bucket of rate may hold: Burst worth, at least one.
func (l *Limiter) capacity(rate float64) float64 { return max(1, rate*l.burst.Seconds()) }

// Wait blocks until both budgets allow a request of tokens estimated tokens (prompt plus expected
// output), then counts it. Callers are served in arrival order. It returns nil when granted, or
// context.Cause(ctx) when ctx ended first (the request then counts for nothing).
func (l *Limiter) Wait(ctx context.Context, tokens int) error {
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	w := &waiter{tokens: max(tokens, 0), ready: make(chan struct{})}
	l.mu.Lock()
	now := l.clock.Now()
	l.refresh(now)
	l.queue = append(l.queue, w)
	l.dispatch(now)
	l.mu.Unlock()

	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	i := slices.Index(l.queue, w)
	if i < 0 {
		return nil // granted while ctx ended: the permit is spent, use it
	}
	l.queue = slices.Delete(l.queue, i, i+1)
	if i == 0 {
		// The head left: the next one may be allowed already.
		now := l.clock.Now()
		l.refresh(now)
		l.dispatch(now)
	}
	return context.Cause(ctx)
}

// Free reports whether a request needs no permit: no limit configured or learned, no hint of
// one from the server, no pause or probe, nobody waiting. Once it is not, it never is again in
// this limiter's life: a server that refused once, or stated a limit, may again.
func (l *Limiter) Free() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.limited {
		now := l.clock.Now()
		l.limited = l.rpm > 0 || l.tpm > 0 || l.reqHint.set || l.tokHint.set || l.probing ||
			now.Before(l.pausedUntil) || len(l.queue) > 0 || l.stats.RateLimited > 0
	}
	return !l.limited
}

// Take counts a request sent without waiting while the limiter was Free, as a grant counts.
func (l *Limiter) Take(tokens int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	l.refresh(now)
	l.grant(now, max(tokens, 0))
}

// Reconcile corrects the token budget once a request's real usage is known: estimated is what
// Wait was given, actual what the server counted (prompt plus completion tokens; 0 for a request
// the server refused). A request that used less gives the difference back; one that used more
// takes it from what follows.
func (l *Limiter) Reconcile(estimated, actual int) {
	if actual < 0 || estimated < 0 {
		return
	}
	delta := actual - estimated
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stats.GrantedTokens += int64(delta)
	if l.tpm == 0 {
		return
	}
	now := l.clock.Now()
	l.refresh(now)
	l.tok.level = min(l.tok.level-float64(delta), l.capacity(l.rate(l.tpm)))
	l.log.reconcile(estimated, delta)
	if delta < 0 {
		l.dispatch(now)
	}
}

// Feedback applies what an answer said: a 429 pauses every grant for fb.RetryAfter (DefaultPause
// when 0, at most MaxPause) and lowers the rates; remaining-* values with their reset stop grants
// once the server's remaining budget is spent, until it has room again.
func (l *Limiter) Feedback(fb Feedback) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	l.refresh(now)
	switch {
	case fb.Outage:
		// The server cannot be reached: everyone waits, then one request probes at a time.
		l.probing, l.probeOut = true, false
		if until := now.Add(min(max(fb.RetryAfter, time.Second), MaxPause)); until.After(l.pausedUntil) {
			l.pausedUntil = until
		}
	case fb.Status > 0 && l.probing:
		l.probing, l.probeOut = false, false // an answer came back: the server is there
	}
	if fb.Status == http.StatusTooManyRequests {
		l.stats.RateLimited++
		pause := fb.RetryAfter
		if pause <= 0 {
			pause = DefaultPause
		}
		if until := now.Add(min(pause, MaxPause)); until.After(l.pausedUntil) {
			l.pausedUntil = until
		}
		if l.configured && (l.lastCut.IsZero() || now.Sub(l.lastCut) >= decreaseHold) {
			l.factor = max(minFactor, l.factor*decreaseFactor)
			l.lastCut = now
			l.req.level = min(l.req.level, l.capacity(l.rate(l.rpm)))
			l.tok.level = min(l.tok.level, l.capacity(l.rate(l.tpm)))
		}
		l.nextRecover = now.Add(recoverEvery)
	}
	// The key's own limits, when the server states them: a run without --rpm/--tpm adopts them,
	// and a configured limit above them comes down to them.
	l.learn(now, &l.rpm, &l.req, fb.LimitRequests, "requests")
	l.learn(now, &l.tpm, &l.tok, fb.LimitTokens, "tokens")
	l.reqHint.update(now, fb.RemainingRequests, fb.LimitRequests, fb.ResetRequests)
	l.tokHint.update(now, fb.RemainingTokens, fb.LimitTokens, fb.ResetTokens)
	l.dispatch(now)
}

// learn adopts limit (per minute) for the budget *cur when the server stated it and it is lower
// than what is in force, or nothing is.
func (l *Limiter) learn(now time.Time, cur *float64, b *bucket, limit int, what string) {
	if limit <= 0 || (*cur > 0 && float64(limit) >= *cur) {
		return
	}
	l.fill(now)
	*cur = float64(limit)
	l.configured = true
	b.level = min(b.level, l.capacity(l.rate(*cur)))
	if l.onLearn != nil {
		l.onLearn(what, limit)
	}
}

// State returns a snapshot.
func (l *Limiter) State() State {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	l.refresh(now)
	s := l.stats
	s.Factor = l.factor
	s.RPM, s.TPM = int(l.rpm), int(l.tpm)
	s.Waiting = len(l.queue)
	if l.pausedUntil.After(now) {
		s.Paused = l.pausedUntil.Sub(now)
	}
	return s
}

// refresh brings the buckets, the log, the factor and the hints up to now.
func (l *Limiter) refresh(now time.Time) {
	for l.factor < 1 && !now.Before(l.nextRecover) {
		l.fill(l.nextRecover)
		l.factor = min(1, l.factor+recoverStep)
		l.nextRecover = l.nextRecover.Add(recoverEvery)
	}
	l.fill(now)
	l.log.prune(now.Add(-l.span))
	l.reqHint.expire(now)
	l.tokHint.expire(now)
}

// fill refills the buckets up to t at the current rates.
func (l *Limiter) fill(t time.Time) {
	for _, b := range []struct {
		b     *bucket
		limit float64
	}{{&l.req, l.rpm}, {&l.tok, l.tpm}} {
		if b.limit == 0 || !t.After(b.b.last) {
			continue
		}
		r := l.rate(b.limit)
		b.b.level = min(b.b.level+r*t.Sub(b.b.last).Seconds(), l.capacity(r))
		b.b.last = t
	}
}

// dispatch grants the head of the queue while it is allowed, then arms the timer for when the
// new head will be.
func (l *Limiter) dispatch(now time.Time) {
	for len(l.queue) > 0 {
		w := l.queue[0]
		if l.probing && l.probeOut && now.Before(l.probeAt.Add(probeHold)) {
			// A probe is out: the others wait for its answer (or, if none comes, probeHold).
			l.arm(now, l.probeAt.Add(probeHold))
			return
		}
		if at := l.readyAt(now, w.tokens); at.After(now) {
			if l.factor < 1 && l.nextRecover.Before(at) {
				at = l.nextRecover // the rates rise then: look again
			}
			l.arm(now, at)
			return
		}
		l.grant(now, w.tokens)
		if l.probing {
			l.probeOut, l.probeAt = true, now
		}
		l.queue[0] = nil
		l.queue = l.queue[1:]
		close(w.ready)
	}
	l.disarm()
}

// readyAt is the earliest time a request of n tokens is allowed, if nothing else changes.
func (l *Limiter) readyAt(now time.Time, n int) time.Time {
	at := laterOf(now, l.pausedUntil)
	if l.rpm > 0 {
		at = laterOf(at, l.bucketReady(now, &l.req, l.rate(l.rpm), 1))
		at = laterOf(at, l.log.countReady(max(1, math.Floor(l.rpm*l.factor+1e-9)), l.span))
	}
	if l.tpm > 0 {
		at = laterOf(at, l.bucketReady(now, &l.tok, l.rate(l.tpm), float64(n)))
		at = laterOf(at, l.log.tokensReady(l.tpm*l.factor, float64(n), l.span))
	}
	at = laterOf(at, l.reqHint.readyFor(1))
	return laterOf(at, l.tokHint.readyFor(float64(n)))
}

// bucketReady is when b holds n (at most its capacity: a bigger request goes into debt).
func (l *Limiter) bucketReady(now time.Time, b *bucket, rate, n float64) time.Time {
	need := min(n, l.capacity(rate))
	if b.level >= need-1e-9 {
		return now
	}
	return now.Add(time.Duration(math.Ceil((need - b.level) / rate * float64(time.Second))))
}

func (l *Limiter) grant(now time.Time, n int) {
	if l.rpm > 0 {
		l.req.level--
	}
	if l.tpm > 0 {
		l.tok.level -= float64(n)
	}
	if l.configured {
		l.log.add(now, n)
	}
	l.reqHint.spend(1)
	l.tokHint.spend(float64(n))
	l.stats.Granted++
	l.stats.GrantedTokens += int64(n)
	if l.observe != nil {
		l.observe(now, n)
	}
}

func (l *Limiter) arm(now, at time.Time) {
	if l.timer != nil && l.timerAt.Equal(at) {
		return
	}
	l.disarm()
	l.timerGen++
	gen := l.timerGen
	l.timerAt = at
	l.timer = l.clock.AfterFunc(at.Sub(now), func() { l.wake(gen) })
}

func (l *Limiter) disarm() {
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
}

func (l *Limiter) wake(gen uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if gen != l.timerGen {
		return // a later arm replaced this timer
	}
	l.timer = nil
	now := l.clock.Now()
	l.refresh(now)
	l.dispatch(now)
}

func laterOf(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// update replaces the hint with what an answer said; a value without its reset says nothing.
func (h *hint) update(now time.Time, remaining, limit int, reset time.Duration) {
	if remaining < 0 || reset <= 0 {
		return
	}
	*h = hint{set: true, at: now, remaining: float64(remaining), initial: float64(remaining),
		limit: float64(max(limit, 0)), reset: min(reset, MaxPause)}
}

func (h *hint) expire(now time.Time) {
	if h.set && !now.Before(h.at.Add(h.reset)) {
		*h = hint{}
	}
}

func (h *hint) spend(n float64) {
	if h.set {
		h.remaining -= n
	}
}

// readyFor is when the server will have room for n more, or the zero time when it has now. With
// the server's limit known the room comes back at the rate the reset implies; without it, at the
// reset.
func (h *hint) readyFor(n float64) time.Time {
	if !h.set || h.remaining >= n {
		return time.Time{}
	}
	wait := h.reset
	if used := h.limit - h.initial; h.limit > 0 && used > 0 {
		wait = min(wait, time.Duration(float64(h.reset)*(n-h.remaining)/used))
	}
	return h.at.Add(wait)
}

// grantLog remembers the grants of the last span, oldest first, to guarantee that no span ever
// holds more than a limit whatever the buckets allowed.
type grantLog struct {
	entries []entry
	tokens  float64
}

type entry struct {
	at       time.Time
	tokens   float64
	estimate int
	open     bool // not reconciled yet
}

func (g *grantLog) add(at time.Time, n int) {
	g.entries = append(g.entries, entry{at: at, tokens: float64(n), estimate: n, open: true})
	g.tokens += float64(n)
}

// prune forgets the grants at or before cut.
func (g *grantLog) prune(cut time.Time) {
	i := 0
	for i < len(g.entries) && !g.entries[i].at.After(cut) {
		g.tokens -= g.entries[i].tokens
		i++
	}
	if i > 0 {
		g.entries = g.entries[i:]
		if len(g.entries) == 0 {
			g.entries, g.tokens = nil, 0 // also drops float drift
		}
	}
}

// countReady is when one more grant keeps the span's count within limit.
func (g *grantLog) countReady(limit float64, span time.Duration) time.Time {
	over := len(g.entries) - int(limit) // grants that must leave the span first, minus one
	if over < 0 {
		return time.Time{}
	}
	return g.entries[over].at.Add(span)
}

// tokensReady is when n more tokens keep the span's sum within limit (a request bigger than the
// limit waits for an empty span).
func (g *grantLog) tokensReady(limit, n float64, span time.Duration) time.Time {
	n = min(n, limit)
	sum := g.tokens
	if sum+n <= limit+1e-6 {
		return time.Time{}
	}
	for _, e := range g.entries {
		sum -= e.tokens
		if sum+n <= limit+1e-6 {
			return e.at.Add(span)
		}
	}
	return g.entries[len(g.entries)-1].at.Add(span)
}

// reconcile moves delta tokens onto a grant of that estimate. Reconcile does not say which grant
// it is about, so it errs on the safe side: a correction down goes to the oldest open grant of
// that estimate (it leaves the span no later than the right one would), a correction up to the
// newest (it stays no shorter). A correction up with no such grant left goes to the newest grant.
func (g *grantLog) reconcile(estimate, delta int) {
	idx := -1
	if delta <= 0 {
		for i := range g.entries {
			if g.entries[i].open && g.entries[i].estimate == estimate {
				idx = i
				break
			}
		}
	} else {
		for i := len(g.entries) - 1; i >= 0; i-- {
			if g.entries[i].open && g.entries[i].estimate == estimate {
				idx = i
				break
			}
		}
		if idx < 0 {
			idx = len(g.entries) - 1
		}
	}
	if idx < 0 {
		return
	}
	e := &g.entries[idx]
	if e.open && e.estimate == estimate {
		e.open = false
	}
	after := max(0, e.tokens+float64(delta))
	g.tokens += after - e.tokens
	e.tokens = after
}
