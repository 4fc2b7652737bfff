package ratelimit

import (
	"bufio"
	"context"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/trialcat/trialcat/internal/wire"
)

// Most tests run in a testing/synctest bubble: the system clock is fake there and moves only when
// every goroutine is blocked, so durations are exact and minutes take milliseconds.

// grants records every grant of a limiter, in order.
type grants struct {
	mu  sync.Mutex
	at  []time.Time
	tok []int
}

func observe(l *Limiter) *grants {
	g := &grants{}
	l.observe = func(at time.Time, tokens int) {
		g.mu.Lock()
		defer g.mu.Unlock()
		g.at = append(g.at, at)
		g.tok = append(g.tok, tokens)
	}
	return g
}

func (g *grants) snapshot() ([]time.Time, []int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.at), slices.Clone(g.tok)
}

// windowMax returns the most grants and the most tokens of any window (t-w, t], as a server
// with a sliding window counts them. at must be sorted.
func windowMax(at []time.Time, tok []int, w time.Duration) (count, tokens int) {
	lo, sum := 0, 0
	for hi := range at {
		sum += tok[hi]
		for !at[lo].After(at[hi].Add(-w)) {
			sum -= tok[lo]
			lo++
		}
		count = max(count, hi-lo+1)
		tokens = max(tokens, sum)
	}
	return count, tokens
}

// busy runs callers goroutines that call Wait back to back with sizes from size until ctx ends,
// and returns a func that waits for them.
func busy(ctx context.Context, p Permits, callers int, size func(caller, i int) int) (wait func()) {
	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() {
			for i := 0; ; i++ {
				if p.Wait(ctx, size(c, i)) != nil {
					return
				}
			}
		})
	}
	return wg.Wait
}

// fakeClock is a manual Clock: time moves only with Advance.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c       *fakeClock
	at      time.Time
	f       func()
	stopped bool
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.stopped
	t.stopped = true
	return was
}

// Advance moves time forward by d, running due timers in order, each at its own time.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	for {
		var next *fakeTimer
		for _, t := range c.timers {
			if !t.stopped && !t.at.After(end) && (next == nil || t.at.Before(next.at)) {
				next = t
			}
		}
		if next == nil {
			break
		}
		next.stopped = true
		c.now = laterOf(c.now, next.at)
		c.mu.Unlock()
		next.f()
		c.mu.Lock()
	}
	c.now = end
	c.mu.Unlock()
}

// pipeWorker connects a Client to srv as worker n over two io.Pipes, the way a worker process is
// connected to the coordinator, and returns it with a func that disconnects it: the worker's
// stdout ends, the server forgets it, and its stdin ends.
func pipeWorker(ctx context.Context, srv *Server, n int) (*Client, func()) {
	outR, outW := io.Pipe() // worker stdout -> coordinator
	inR, inW := io.Pipe()   // coordinator -> worker stdin
	c := NewClient(wire.NewWriter(outW), inR)
	srv.Attach(ctx, n, inW)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			m, err := wire.Decode(sc.Bytes())
			if err != nil {
				panic(err)
			}
			srv.Handle(n, m)
		}
	}()
	return c, func() {
		outW.Close()
		<-done
		srv.Forget(n)
		inW.Close()
		<-c.Done()
	}
}
