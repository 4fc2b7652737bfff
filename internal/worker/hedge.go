package worker

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/trialcat/trialcat/internal/llm"
)

// hedger sends a second copy of a request that has run longer than its own median latency (by
// the coordinator's latency model: a record of more tokens takes longer; the run's p90 latency
// without a model) once the run has nothing left to hand out (--hedge): the coordinator then lends this worker the
// request slots of workers gone idle (a boost line) and a budget of copies. The copies run in
// those lent slots, beside this worker's own requests (a copy that frees a stuck request frees
// the slot the batch's next record waits for). The first good answer of the two wins; the other
// is cancelled. Both go through the rate limiter. It wraps the provider, so
// everything above it (retries, validation, the row) sees one answer per attempt.
type hedger struct {
	inner llm.Provider
	// permit waits for a rate permit for a copy of req.
	permit func(ctx context.Context, req llm.Request) error
	// onHedge is told of each copy sent (for the log).
	onHedge func(id string, age time.Duration)
	// valid says whether an answer passes the schema: an answer that does not lets the other
	// request win (nil: every answer without an error does).
	valid func(content string) bool
	now   func() time.Time

	mu       sync.Mutex
	inflight map[*call]struct{}
	// extra is the slots lent (copies that may run at once), budget the copies still allowed,
	// p90 the age a request must reach; active counts copies running.
	extra, budget, active int
	p90                   time.Duration
	model                 latencyModel
	wake                  chan struct{}
}

// latencyModel predicts a request's median latency from its size (tally.LatencyModel, sent in
// boost lines); the zero model predicts nothing.
type latencyModel struct{ baseMS, perKTokMS, median float64 }

// threshold is the age past which req is copied: its predicted median latency, or p90 when the
// model predicts nothing.
func (m latencyModel) threshold(req llm.Request, p90 time.Duration) time.Duration {
	if m.median <= 0 {
		return p90
	}
	tokens := float64(len(req.System)+len(req.User)) / 4
	ms := m.median * (m.baseMS + m.perKTokMS*tokens/1000)
	if ms <= 0 {
		return p90
	}
	return time.Duration(ms * float64(time.Millisecond))
}

// call is one request in flight.
type call struct {
	req     llm.Request
	ctx     context.Context
	started time.Time
	// hedged: a copy was sent (or is waiting for its permit); copySent: it got its permit and
	// went to the server; answered counts the answers in. Guarded by hedger.mu.
	hedged, copySent bool
	answered         int
	results          chan hedgeResult // buffered for both
}

type hedgeResult struct {
	reply llm.Reply
	err   error
	copy  bool // the copy's answer
}

func newHedger(inner llm.Provider, permit func(context.Context, llm.Request) error, onHedge func(string, time.Duration)) *hedger {
	return &hedger{inner: inner, permit: permit, onHedge: onHedge, now: time.Now, inflight: map[*call]struct{}{}, wake: make(chan struct{}, 1)}
}

type hedgeKey struct{}

// hedgeNote collects whether a record's requests were hedged and whether a copy won; Complete
// fills the one its context carries.
type hedgeNote struct {
	mu          sync.Mutex
	hedged, won bool
}

func (n *hedgeNote) get() (hedged, won bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.hedged, n.won
}

// withHedgeNote returns a context that collects what the hedger did for one record.
func withHedgeNote(ctx context.Context) (context.Context, *hedgeNote) {
	n := &hedgeNote{}
	return context.WithValue(ctx, hedgeKey{}, n), n
}

// Complete makes one attempt, which a copy may join; the first answer without an error that
// passes the schema wins and the other request is cancelled. A copy that reached the server is costed: the winner's usage
// gets the loser's prompt tokens (estimated; a cancelled request reports none).
func (h *hedger) Complete(ctx context.Context, req llm.Request) (llm.Reply, error) {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel() // the losing request
	c := &call{req: req, ctx: cctx, started: h.now(), results: make(chan hedgeResult, 2)}
	h.mu.Lock()
	h.inflight[c] = struct{}{}
	h.mu.Unlock()
	go func() {
		r, err := h.inner.Complete(cctx, req)
		c.results <- hedgeResult{reply: r, err: err}
	}()
	var orig *hedgeResult
	for {
		res := <-c.results
		h.mu.Lock()
		c.answered++
		outstanding := 1 - c.answered
		if c.hedged {
			outstanding++
		}
		good := res.err == nil && (h.valid == nil || h.valid(res.reply.Content))
		done := good || outstanding == 0
		if done {
			delete(h.inflight, c) // no copy after this
		}
		hedged, copySent := c.hedged, c.copySent
		h.mu.Unlock()
		if !res.copy {
			orig = &res
		}
		if !done {
			continue
		}
		if hedged {
			if n, ok := ctx.Value(hedgeKey{}).(*hedgeNote); ok {
				n.mu.Lock()
				n.hedged, n.won = true, n.won || res.copy && good
				n.mu.Unlock()
			}
		}
		if !good && orig != nil {
			return orig.reply, orig.err // neither answered well: the request's own outcome
		}
		if good && copySent {
			res.reply.Usage.InputTokens += int64((len(req.System) + len(req.User)) / 4)
		}
		return res.reply, res.err
	}
}

// boost takes the coordinator's lending: extra slots (absolute), more budget, the p90 and the
// latency model.
func (h *hedger) boost(extra, budget int, p90 time.Duration, model latencyModel) {
	h.mu.Lock()
	h.extra, h.budget, h.p90, h.model = extra, h.budget+budget, p90, model
	h.mu.Unlock()
	h.poke()
}

func (h *hedger) poke() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// run sends copies until ctx ends: every tick, the requests furthest past their threshold while
// slots and budget allow.
func (h *hedger) run(ctx context.Context, tick time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-h.wake:
		}
		for _, c := range h.due() {
			h.send(c)
		}
	}
}

// due picks the calls to copy now and counts them as hedged.
func (h *hedger) due() []*call {
	h.mu.Lock()
	defer h.mu.Unlock()
	if (h.p90 <= 0 && h.model.median <= 0) || h.active >= h.extra || h.budget <= 0 {
		return nil
	}
	now := h.now()
	type late struct {
		c    *call
		over float64 // age ÷ threshold
	}
	var lates []late
	for c := range h.inflight {
		if c.hedged {
			continue
		}
		th := h.model.threshold(c.req, h.p90)
		if age := now.Sub(c.started); th > 0 && age > th {
			lates = append(lates, late{c, float64(age) / float64(th)})
		}
	}
	// The furthest past its own threshold first: the likeliest to end the run last.
	slices.SortFunc(lates, func(a, b late) int {
		if a.over != b.over {
			return cmp.Compare(b.over, a.over)
		}
		return a.c.started.Compare(b.c.started)
	})
	n := min(len(lates), h.extra-h.active, h.budget)
	old := make([]*call, n)
	for i := range old {
		old[i] = lates[i].c
	}
	for _, c := range old {
		c.hedged = true
		h.active++
		h.budget--
	}
	return old
}

// send runs one copy of c's request; its answer joins c's.
func (h *hedger) send(c *call) {
	if h.onHedge != nil {
		h.onHedge(c.req.RecordID, h.now().Sub(c.started))
	}
	go func() {
		var res hedgeResult
		if err := h.permit(c.ctx, c.req); err != nil {
			res = hedgeResult{err: err, copy: true}
		} else {
			h.mu.Lock()
			c.copySent = true
			h.mu.Unlock()
			r, err := h.inner.Complete(c.ctx, c.req)
			res = hedgeResult{reply: r, err: err, copy: true}
		}
		h.mu.Lock()
		h.active--
		h.mu.Unlock()
		c.results <- res
		h.poke() // a slot is free
	}()
}
