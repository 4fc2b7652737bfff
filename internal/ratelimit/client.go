package ratelimit

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/trialcat/trialcat/internal/wire"
)

// Client is a worker's end of the permit protocol: it asks the coordinator's Server for permits
// over the worker's stdout and reads grants from its stdin. It implements Permits and is safe
// for concurrent use.
type Client struct {
	w *wire.Writer
	// other gets the lines on r that are not grants (a serving worker's assign lines).
	other func(wire.Msg)

	mu      sync.Mutex
	seq     uint64
	pending map[uint64]chan error
	goneErr error // set when stdin ended
	gone    chan struct{}

	// free is whether the coordinator said permits are free (wire.Free) and has not ended it;
	// took whether a took line was sent.
	free, took atomic.Bool
}

// NewClient writes protocol lines to w (the worker's stdout, shared with its events) and reads
// grants from r (its stdin) until r ends.
//
// NewClient owns r: nothing else may read it. When r ends (the coordinator is gone), every
// pending and later Wait fails with ErrCoordinatorGone and Done is closed.
func NewClient(w *wire.Writer, r io.Reader) *Client {
	return NewClientWith(w, r, nil)
}

// NewClientWith is NewClient that passes every other protocol line read from r to other, in
// order, from the reading goroutine (other must not block: grants wait behind it).
func NewClientWith(w *wire.Writer, r io.Reader, other func(wire.Msg)) *Client {
	c := &Client{w: w, other: other, pending: map[uint64]chan error{}, gone: make(chan struct{})}
	go c.read(r)
	return c
}

// Done is closed once the coordinator is gone (stdin ended). A worker cancels its run then.
func (c *Client) Done() <-chan struct{} { return c.gone }

// Err returns nil while the coordinator is there, then an error wrapping ErrCoordinatorGone.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.goneErr
}

// Wait asks the coordinator for a permit for a request of tokens estimated tokens and blocks
// until it is granted, ctx ends (the acquire is then withdrawn) or the coordinator is gone.
func (c *Client) Wait(ctx context.Context, tokens int) error {
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	if c.free.Load() {
		select {
		case <-c.gone:
			return c.Err()
		default:
		}
		// No round trip: count it with the coordinator, at once for the first (the run's first
		// request is a phase it reports), else with the next line.
		m := wire.Msg{Type: wire.Took, Tokens: max(tokens, 0)}
		send := c.w.Post
		if !c.took.Swap(true) {
			send = c.w.Send
		}
		if err := send(m); err != nil {
			return fmt.Errorf("ratelimit: count a request: %w: %w", err, ErrCoordinatorGone)
		}
		return nil
	}
	ch := make(chan error, 1)
	c.mu.Lock()
	if c.goneErr != nil {
		err := c.goneErr
		c.mu.Unlock()
		return err
	}
	c.seq++
	seq := c.seq
	c.pending[seq] = ch
	c.mu.Unlock()

	if err := c.w.Send(wire.Msg{Type: wire.Acquire, Seq: seq, Tokens: max(tokens, 0)}); err != nil {
		c.drop(seq)
		return fmt.Errorf("ratelimit: ask for a permit: %w: %w", err, ErrCoordinatorGone)
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
	}
	if c.drop(seq) {
		_ = c.w.Send(wire.Msg{Type: wire.Cancel, Seq: seq})
		return context.Cause(ctx)
	}
	// Answered while ctx ended: a grant is spent anyway, so use it.
	return <-ch
}

// Reconcile reports a request's real token usage to the coordinator.
func (c *Client) Reconcile(estimated, actual int) {
	_ = c.w.Post(wire.Msg{Type: wire.Reconcile, Estimated: estimated, Actual: actual})
}

// Feedback reports what an answer said about the rate limits to the coordinator: at once for a
// 429 or an outage (everyone must pause), else with the next line (within wire.PostDelay).
func (c *Client) Feedback(fb Feedback) {
	if fb.Status == 429 || fb.Outage {
		_ = c.w.Send(feedbackMsg(fb))
		return
	}
	_ = c.w.Post(feedbackMsg(fb))
}

// drop forgets a pending acquire and reports whether it was still pending.
func (c *Client) drop(seq uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.pending[seq]
	delete(c.pending, seq)
	return ok
}

func (c *Client) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		m, err := wire.Decode(sc.Bytes())
		if err != nil {
			continue // not protocol
		}
		switch m.Type {
		case wire.Free:
			c.free.Store(true)
			continue
		case wire.Limited:
			c.free.Store(false)
			continue
		}
		if m.Type != wire.Grant {
			if c.other != nil {
				c.other(m)
			}
			continue
		}
		c.mu.Lock()
		ch, ok := c.pending[m.Seq]
		delete(c.pending, m.Seq)
		c.mu.Unlock()
		switch {
		case !ok: // withdrawn
		case m.Error != "":
			ch <- fmt.Errorf("ratelimit: coordinator: %s: %w", m.Error, ErrRefused)
		default:
			ch <- nil
		}
	}
	gone := ErrCoordinatorGone
	if err := sc.Err(); err != nil {
		gone = fmt.Errorf("%w: %w", ErrCoordinatorGone, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.goneErr = gone
	for seq, ch := range c.pending {
		ch <- gone
		delete(c.pending, seq)
	}
	close(c.gone)
}
