package ratelimit

import (
	"context"
	"io"
	"sync"

	"github.com/trialcat/trialcat/internal/wire"
)

// Server is the coordinator's end of the permit protocol: one for the run, holding the run's
// Limiter, fed the permit lines of every worker. It is safe for concurrent use.
type Server struct {
	l *Limiter

	mu     sync.Mutex
	peers  map[int]*peer
	closed bool
	// free is whether permits were free when last looked at (Limiter.Free): workers attached
	// then were told so, and are told when it ends.
	free bool
	wg   sync.WaitGroup // acquire goroutines
}

// peer is one worker process.
type peer struct {
	ctx     context.Context
	cancel  context.CancelFunc
	pending map[uint64]context.CancelFunc // guarded by Server.mu
	reply   *wire.Writer
}

// NewServer returns a server granting permits from l.
func NewServer(l *Limiter) *Server {
	return &Server{l: l, peers: map[int]*peer{}, free: l.Free()}
}

// Attach registers a worker process before it can send its first line: grants go to reply (the
// worker's stdin), and its acquires are dropped when ctx ends or Forget is called. Attaching a
// number again (a restarted worker) replaces the old process.
func (s *Server) Attach(ctx context.Context, worker int, reply io.Writer) {
	pctx, cancel := context.WithCancel(ctx)
	p := &peer{ctx: pctx, cancel: cancel, pending: map[uint64]context.CancelFunc{}, reply: wire.NewWriter(reply)}
	s.mu.Lock()
	old := s.peers[worker]
	if s.closed {
		cancel()
	} else {
		s.peers[worker] = p
		if s.free {
			// Before any grant: the worker's first line from us.
			_ = p.reply.Send(wire.Msg{Type: wire.Free})
		}
	}
	s.mu.Unlock()
	if old != nil {
		old.cancel()
	}
}

// RequireGrants makes every request wait for a grant for the rest of the run, free or not: for a
// run that must be able to stop its requests at once (a cost budget). Call it before Attach.
func (s *Server) RequireGrants() {
	s.mu.Lock()
	s.free = false
	s.mu.Unlock()
}

// checkFree tells every worker permits are no longer free, once they are not. The lines are
// written outside the lock, as grants are: a stopped worker's full stdin must not hold up the
// others.
func (s *Server) checkFree() {
	s.mu.Lock()
	if !s.free || s.l.Free() {
		s.mu.Unlock()
		return
	}
	s.free = false
	peers := make([]*peer, 0, len(s.peers))
	for _, p := range s.peers {
		peers = append(peers, p)
	}
	s.mu.Unlock()
	for _, p := range peers {
		_ = p.reply.Send(wire.Msg{Type: wire.Limited})
	}
}

// Handle takes one permit line of a worker (see wire.Msg.IsPermit). It never blocks: an acquire
// waits in its own goroutine (at most MaxPending per worker) and its grant is written to the
// worker's reply writer when the limiter allows it. Lines of a worker not attached are dropped.
func (s *Server) Handle(worker int, m wire.Msg) {
	switch m.Type {
	case wire.Acquire:
		s.acquire(worker, m.Seq, m.Tokens)
	case wire.Cancel:
		s.mu.Lock()
		if p := s.peers[worker]; p != nil {
			if cancel, ok := p.pending[m.Seq]; ok {
				cancel()
			}
		}
		s.mu.Unlock()
	case wire.Took:
		s.l.Take(m.Tokens)
	case wire.Reconcile:
		s.l.Reconcile(m.Estimated, m.Actual)
	case wire.Feedback:
		s.l.Feedback(feedbackFrom(m))
		s.checkFree()
	}
}

func (s *Server) acquire(worker int, seq uint64, tokens int) {
	s.mu.Lock()
	p := s.peers[worker]
	if s.closed || p == nil {
		s.mu.Unlock()
		return
	}
	if _, dup := p.pending[seq]; dup {
		s.mu.Unlock()
		return
	}
	s.wg.Add(1)
	if len(p.pending) >= MaxPending {
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			_ = p.reply.Send(wire.Msg{Type: wire.Grant, Seq: seq, Error: "too many permits pending for this worker"})
		}()
		return
	}
	actx, cancel := context.WithCancel(p.ctx)
	p.pending[seq] = cancel
	s.mu.Unlock()

	go func() {
		defer s.wg.Done()
		err := s.l.Wait(actx, tokens)
		s.mu.Lock()
		delete(p.pending, seq)
		s.mu.Unlock()
		cancel()
		if err != nil {
			return // withdrawn by the worker, or the worker is gone
		}
		// An error means the worker has exited; Forget follows.
		_ = p.reply.Send(wire.Msg{Type: wire.Grant, Seq: seq})
	}()
}

// Forget drops a worker process that has exited: its waiting acquires leave the queue.
func (s *Server) Forget(worker int) {
	s.mu.Lock()
	p := s.peers[worker]
	delete(s.peers, worker)
	s.mu.Unlock()
	if p != nil {
		p.cancel()
	}
}

// Close drops every worker and waits for the acquire goroutines to end. Handle ignores acquires
// after Close.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	peers := s.peers
	s.peers = map[int]*peer{}
	s.mu.Unlock()
	for _, p := range peers {
		p.cancel()
	}
	s.wg.Wait()
}
