package ratelimit

import (
	"context"
	"encoding/json"
	"io"
	"sync"
)

// Server is the coordinator's end of the permit protocol: one for the run, holding the run's
// Limiter, fed the protocol lines of every worker. It is safe for concurrent use.
type Server struct {
	l *Limiter

	mu     sync.Mutex
	peers  map[int]*peer
	closed bool
	wg     sync.WaitGroup // acquire goroutines
}

// peer is one worker process.
type peer struct {
	ctx     context.Context
	cancel  context.CancelFunc
	pending map[uint64]context.CancelFunc // guarded by Server.mu

	wmu   sync.Mutex
	stdin io.Writer
}

// NewServer returns a server granting permits from l.
func NewServer(l *Limiter) *Server {
	return &Server{l: l, peers: map[int]*peer{}}
}

// Handle takes one line of worker's stdout. It reports whether the line belonged to the permit
// protocol; other lines (events) are the caller's. It never blocks: an acquire waits in its own
// goroutine (at most MaxPending per worker) and its grant is written to stdin, the worker's
// stdin, when the limiter allows it.
//
// The first line of a worker process sets its stdin and its context (ctx: when it ends, its
// acquires are dropped). Call Forget when that process has exited (after Process.Wait, which
// drains its stdout), before a restarted process with the same number sends its first line.
func (s *Server) Handle(ctx context.Context, worker int, line []byte, stdin io.Writer) (handled bool) {
	var m message
	if json.Unmarshal(line, &m) != nil {
		return false
	}
	switch m.Type {
	case TypeAcquire:
		s.acquire(ctx, worker, m.Seq, m.Tokens, stdin)
	case TypeCancel:
		s.mu.Lock()
		if p := s.peers[worker]; p != nil {
			if cancel, ok := p.pending[m.Seq]; ok {
				cancel()
			}
		}
		s.mu.Unlock()
	case TypeReconcile:
		s.l.Reconcile(m.Estimated, m.Actual)
	case TypeFeedback:
		var fb wireFeedback
		if json.Unmarshal(line, &fb) == nil {
			s.l.Feedback(fb.feedback())
		}
	default:
		return false
	}
	return true
}

func (s *Server) acquire(ctx context.Context, worker int, seq uint64, tokens int, stdin io.Writer) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	p := s.peers[worker]
	if p == nil {
		pctx, cancel := context.WithCancel(ctx)
		p = &peer{ctx: pctx, cancel: cancel, pending: map[uint64]context.CancelFunc{}, stdin: stdin}
		s.peers[worker] = p
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
			p.write(message{Type: TypeGrant, Seq: seq, Error: "too many permits pending for this worker"})
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
		p.write(message{Type: TypeGrant, Seq: seq})
	}()
}

// write sends one line to the worker. Errors mean the worker has exited; Forget follows.
func (p *peer) write(m message) {
	if p.stdin == nil {
		return
	}
	line := encode(m)
	p.wmu.Lock()
	defer p.wmu.Unlock()
	_, _ = p.stdin.Write(line)
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
