package worker

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trialcat/trialcat/internal/llm"
)

// slowFirst answers its first call only when cancelled (a request stuck in the tail) and every
// later call at once.
type slowFirst struct {
	calls, cancelled atomic.Int32
}

func (p *slowFirst) Complete(ctx context.Context, req llm.Request) (llm.Reply, error) {
	if p.calls.Add(1) == 1 {
		<-ctx.Done()
		p.cancelled.Add(1)
		return llm.Reply{}, ctx.Err()
	}
	return llm.Reply{Content: `{"ok":true}`, Usage: llm.Usage{InputTokens: 10, OutputTokens: 5}}, nil
}

func runHedger(t *testing.T, p llm.Provider, timeout time.Duration, lend func(h *hedger)) (llm.Reply, error, *hedgeNote) {
	t.Helper()
	permits := atomic.Int32{}
	h := newHedger(p, func(context.Context, llm.Request) error { permits.Add(1); return nil }, nil)
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	go h.run(ctx, 5*time.Millisecond)
	lend(h)
	cctx, note := withHedgeNote(ctx)
	reply, err := h.Complete(cctx, llm.Request{RecordID: "A", User: "12345678"})
	return reply, err, note
}

// A request past the p90 gets a copy once slots are lent; the copy's answer wins, the stuck
// request is cancelled, and the copy's prompt is costed.
func TestHedgeCopiesARequestInTheTail(t *testing.T) {
	p := &slowFirst{}
	reply, err, note := runHedger(t, p, 2*time.Second, func(h *hedger) { h.boost(1, 1, 20*time.Millisecond, latencyModel{}) })
	if err != nil {
		t.Fatalf("Complete = %v; want the copy's answer", err)
	}
	if hedged, won := note.get(); !hedged || !won {
		t.Errorf("note hedged=%v won=%v; want both", hedged, won)
	}
	if got := p.calls.Load(); got != 2 {
		t.Errorf("%d calls; want the request and one copy", got)
	}
	waitCancelled := time.Now().Add(time.Second)
	for p.cancelled.Load() == 0 && time.Now().Before(waitCancelled) {
		time.Sleep(time.Millisecond)
	}
	if p.cancelled.Load() != 1 {
		t.Error("the losing request was not cancelled")
	}
	if reply.Usage.InputTokens != 10+2 { // the copy's usage plus the loser's prompt (8 bytes / 4)
		t.Errorf("input tokens %d; want 12 (the loser's prompt counted)", reply.Usage.InputTokens)
	}
}

// Without slots lent, or without budget, nothing is copied: the request runs to its own end.
func TestHedgeNeedsSlotsAndBudget(t *testing.T) {
	for name, lend := range map[string]func(*hedger){
		"no boost":  func(*hedger) {},
		"no budget": func(h *hedger) { h.boost(1, 0, 20*time.Millisecond, latencyModel{}) },
		"no slots":  func(h *hedger) { h.boost(0, 5, 20*time.Millisecond, latencyModel{}) },
	} {
		t.Run(name, func(t *testing.T) {
			p := &slowFirst{}
			_, err, note := runHedger(t, p, 300*time.Millisecond, lend)
			if err == nil {
				t.Fatal("answered; the only request was stuck until the deadline")
			}
			if hedged, _ := note.get(); hedged || p.calls.Load() != 1 {
				t.Errorf("hedged=%v after %d calls; want no copy", hedged, p.calls.Load())
			}
		})
	}
}

// badCopy answers its first call well after 150 ms and every later call at once with content
// that fails the schema.
type badCopy struct{ calls atomic.Int32 }

func (p *badCopy) Complete(ctx context.Context, req llm.Request) (llm.Reply, error) {
	if p.calls.Add(1) == 1 {
		select {
		case <-time.After(150 * time.Millisecond):
			return llm.Reply{Content: "good"}, nil
		case <-ctx.Done():
			return llm.Reply{}, ctx.Err()
		}
	}
	return llm.Reply{Content: "bad"}, nil
}

// A copy whose answer fails the schema does not win: the request's own good answer does.
func TestHedgeCopyMustBeValidToWin(t *testing.T) {
	p := &badCopy{}
	h := newHedger(p, func(context.Context, llm.Request) error { return nil }, nil)
	h.valid = func(c string) bool { return c == "good" }
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	go h.run(ctx, 5*time.Millisecond)
	h.boost(1, 1, 20*time.Millisecond, latencyModel{})
	cctx, note := withHedgeNote(ctx)
	reply, err := h.Complete(cctx, llm.Request{RecordID: "A"})
	if err != nil || reply.Content != "good" {
		t.Fatalf("Complete = %q, %v; want the original's good answer", reply.Content, err)
	}
	if hedged, won := note.get(); !hedged || won {
		t.Errorf("hedged=%v won=%v; want a copy sent that did not win", hedged, won)
	}
}

// stuckFirst leaves every record's first call stuck until cancelled and answers its copies.
type stuckFirst struct {
	mu     sync.Mutex
	seen   map[string]bool
	copies atomic.Int32
}

func (p *stuckFirst) Complete(ctx context.Context, req llm.Request) (llm.Reply, error) {
	p.mu.Lock()
	first := !p.seen[req.RecordID]
	p.seen[req.RecordID] = true
	p.mu.Unlock()
	if first {
		<-ctx.Done()
		return llm.Reply{}, ctx.Err()
	}
	p.copies.Add(1)
	return llm.Reply{Content: `{"ok":true}`}, nil
}

// The budget bounds the copies even when the tail is longer and slots are plenty: five stuck
// requests, ten slots lent and a budget of two give exactly two copies.
func TestHedgeKeepsToItsBudget(t *testing.T) {
	p := &stuckFirst{seen: map[string]bool{}}
	h := newHedger(p, func(context.Context, llm.Request) error { return nil }, nil)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go h.run(ctx, 5*time.Millisecond)
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, _ := withHedgeNote(ctx)
			_, _ = h.Complete(cctx, llm.Request{RecordID: fmt.Sprint("R", i)})
		}()
	}
	time.Sleep(50 * time.Millisecond) // all five started and past the p90
	h.boost(10, 2, 20*time.Millisecond, latencyModel{})
	deadline := time.Now().Add(5 * time.Second)
	for p.copies.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // twenty more ticks for a copy over budget to show
	if got := p.copies.Load(); got != 2 {
		t.Errorf("%d copies; want the budget's 2", got)
	}
	cancel()
	wg.Wait()
}

// With a latency model, a request is late by its own size: of two requests as old as each other,
// the small one (past its predicted median) is copied and the large one (within it) is not; and
// of two late ones, the one furthest past its own median goes first.
func TestHedgeCopiesByEachRequestsOwnMedian(t *testing.T) {
	now := time.Unix(1000, 0)
	h := newHedger(nil, nil, nil)
	h.now = func() time.Time { return now }
	small := &call{req: llm.Request{RecordID: "small", User: strings.Repeat("x", 4000)}, started: now.Add(-300 * time.Millisecond)}   // 1k tokens: median 150 ms
	large := &call{req: llm.Request{RecordID: "large", User: strings.Repeat("x", 40000)}, started: now.Add(-300 * time.Millisecond)}  // 10k tokens: median 600 ms
	older := &call{req: llm.Request{RecordID: "older", User: strings.Repeat("x", 40000)}, started: now.Add(-1000 * time.Millisecond)} // 10k tokens, 1.7× its median
	for _, c := range []*call{small, large, older} {
		h.inflight[c] = struct{}{}
	}
	h.boost(1, 5, time.Hour, latencyModel{baseMS: 100, perKTokMS: 50, median: 1})
	got := h.due()
	if len(got) != 1 || got[0] != small {
		t.Fatalf("first copy %v; want the small request, 2× its median (one slot lent)", ids(got))
	}
	h.active = 0
	got = h.due()
	if len(got) != 1 || got[0] != older {
		t.Fatalf("second copy %v; want the old large request", ids(got))
	}
	h.active = 0
	if got = h.due(); len(got) != 0 {
		t.Errorf("copied %v; the large request is within its median", ids(got))
	}
	// Without a model: the run's p90 for every request.
	h2 := newHedger(nil, nil, nil)
	h2.now = h.now
	h2.inflight[&call{req: llm.Request{RecordID: "a", User: "x"}, started: now.Add(-300 * time.Millisecond)}] = struct{}{}
	h2.boost(1, 1, 400*time.Millisecond, latencyModel{})
	if got := h2.due(); len(got) != 0 {
		t.Errorf("copied %v before the p90 without a model", ids(got))
	}
}

func ids(cs []*call) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.req.RecordID)
	}
	return out
}
