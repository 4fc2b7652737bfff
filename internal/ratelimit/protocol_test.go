package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/trialcat/trialcat/internal/testkit"
	"github.com/trialcat/trialcat/internal/wire"
)

func TestClientServerRoundTrip(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New(Config{RPM: 610}) // 10 a second
		srv := NewServer(l)
		defer srv.Close()
		c, disconnect := pipeWorker(t.Context(), srv, 1)
		defer disconnect()

		// 8 goroutines of one worker share the client: 50 grants take about 5s.
		start := time.Now()
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 50 / 8 {
					if err := c.Wait(t.Context(), 1); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		if s := l.State(); s.Granted != 48 {
			t.Errorf("the server's limiter granted %d; want 48", s.Granted)
		}
		if took := time.Since(start); took < 4*time.Second || took > 5*time.Second {
			t.Errorf("48 grants at 10 a second took %s; want 4.7s", took)
		}
	})
}

func TestClientCoordinatorGone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New(Config{RPM: 61})
		srv := NewServer(l)
		defer srv.Close()
		c, disconnect := pipeWorker(t.Context(), srv, 1)
		if err := c.Wait(t.Context(), 1); err != nil {
			t.Fatal(err)
		}
		// The next waits queue (one a second); then the coordinator dies.
		errs := make(chan error, 3)
		for range 3 {
			go func() { errs <- c.Wait(t.Context(), 1) }()
		}
		synctest.Wait()
		if c.Err() != nil {
			t.Fatalf("Err = %v before the coordinator left", c.Err())
		}
		disconnect()
		for range 3 {
			if err := <-errs; !errors.Is(err, ErrCoordinatorGone) {
				t.Errorf("pending Wait = %v; want ErrCoordinatorGone", err)
			}
		}
		if err := c.Wait(t.Context(), 1); !errors.Is(err, ErrCoordinatorGone) {
			t.Errorf("Wait after = %v; want ErrCoordinatorGone", err)
		}
		select {
		case <-c.Done():
		default:
			t.Error("Done not closed")
		}
		synctest.Wait() // the server's acquire goroutines see the worker forgotten
		if s := l.State(); s.Waiting != 0 {
			t.Errorf("%d acquires of the gone worker still wait at the server; want 0", s.Waiting)
		}
	})
}

func TestClientCancelWithdraws(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New(Config{RPM: 61})
		srv := NewServer(l)
		defer srv.Close()
		c, disconnect := pipeWorker(t.Context(), srv, 1)
		defer disconnect()
		l.Feedback(Feedback{Status: 429, RetryAfter: 10 * time.Second})

		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error, 1)
		go func() { errc <- c.Wait(ctx, 1) }()
		synctest.Wait()
		if s := l.State(); s.Waiting != 1 {
			t.Fatalf("%d waiting at the server; want 1", s.Waiting)
		}
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("Wait = %v; want context.Canceled", err)
		}
		synctest.Wait()
		if s := l.State(); s.Waiting != 0 {
			t.Errorf("%d waiting at the server after the cancel; want 0", s.Waiting)
		}
	})
}

func TestServerForget(t *testing.T) {
	// A worker that exits leaves nothing in the queue; the others go on.
	synctest.Test(t, func(t *testing.T) {
		l := New(Config{RPM: 61})
		srv := NewServer(l)
		defer srv.Close()
		stdin1, stdin2 := &testkit.Buffer{}, &testkit.Buffer{}
		l.Feedback(StatusOnly(429)) // paused for a second: acquires wait
		srv.Attach(t.Context(), 1, stdin1)
		srv.Attach(t.Context(), 2, stdin2)
		for seq := 1; seq <= 3; seq++ {
			srv.Handle(1, acquire(seq))
		}
		srv.Handle(2, acquire(1))
		synctest.Wait()
		if s := l.State(); s.Waiting != 4 {
			t.Fatalf("%d waiting; want 4", s.Waiting)
		}
		srv.Forget(1)
		synctest.Wait()
		if s := l.State(); s.Waiting != 1 {
			t.Fatalf("%d waiting after Forget; want 1", s.Waiting)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if got := stdin2.String(); got != `{"type":"grant","seq":1}`+"\n" {
			t.Errorf("worker 2 got %q; want its grant", got)
		}
		if got := stdin1.String(); got != "" {
			t.Errorf("forgotten worker 1 got %q; want nothing", got)
		}
	})
}

func TestPermitLinesAreTheProtocols(t *testing.T) {
	for _, tc := range []struct {
		name   string
		line   string
		permit bool
	}{
		{"event line", `{"type":"record","worker":1,"id":"NCT1","ok":true,"status":200}`, false},
		{"start event", `{"type":"start","worker":1,"pending":5}`, false},
		{"acquire", `{"type":"acquire","seq":1,"tokens":10}`, true},
		{"cancel", `{"type":"cancel","seq":1}`, true},
		{"reconcile", `{"type":"reconcile","estimated":10,"actual":12}`, true},
		{"feedback", `{"type":"feedback","status":200,"remaining_requests":-1,"remaining_tokens":-1}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := wire.Decode([]byte(tc.line))
			if err != nil {
				t.Fatal(err)
			}
			if m.IsPermit() != tc.permit {
				t.Errorf("IsPermit(%s) = %v; want %v", tc.line, m.IsPermit(), tc.permit)
			}
		})
	}
}

func TestFeedbackAndReconcileOverThePipe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New(Config{RPM: 600, TPM: 100_000})
		srv := NewServer(l)
		defer srv.Close()
		c, disconnect := pipeWorker(t.Context(), srv, 1)
		defer disconnect()
		if err := c.Wait(t.Context(), 1000); err != nil {
			t.Fatal(err)
		}
		c.Reconcile(1000, 1500)
		c.Feedback(Feedback{Status: 429, RetryAfter: 2500 * time.Millisecond, RemainingRequests: 0, RemainingTokens: 10, ResetRequests: time.Second, ResetTokens: time.Second})
		synctest.Wait()
		s := l.State()
		if s.GrantedTokens != 1500 {
			t.Errorf("GrantedTokens = %d after reconcile; want 1500", s.GrantedTokens)
		}
		if s.RateLimited != 1 || s.Paused != 2500*time.Millisecond || s.Factor != 0.8 {
			t.Errorf("State = %+v; want one 429, paused 2.5s, factor 0.8", s)
		}
	})
}

func TestWorkersShareFairly(t *testing.T) {
	// Five workers with the same concurrency get the same share of the run's budget.
	synctest.Test(t, func(t *testing.T) {
		l := New(Config{RPM: 600, TPM: 1_000_000})
		srv := NewServer(l)
		defer srv.Close()
		const workers, concurrency = 5, 4
		var counts [workers]int
		var mu sync.Mutex
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
		defer cancel()
		var wg sync.WaitGroup
		for w := range workers {
			c, disconnect := pipeWorker(t.Context(), srv, w)
			defer disconnect()
			for g := range concurrency {
				wg.Go(func() {
					size := mixedSizes(100, 800)
					for i := 0; ; i++ {
						if c.Wait(ctx, size(w*100+g, i)) != nil {
							return
						}
						mu.Lock()
						counts[w]++
						mu.Unlock()
						time.Sleep(time.Duration(300+100*w) * time.Millisecond) // different latencies
					}
				})
			}
		}
		wg.Wait()
		total := 0
		for _, n := range counts {
			total += n
		}
		mean := float64(total) / workers
		for w, n := range counts {
			if d := float64(n)/mean - 1; d < -0.2 || d > 0.2 {
				t.Errorf("worker %d got %d grants, %.0f%% off the mean %.0f; want within 20%% (all: %v)", w, n, 100*d, mean, counts)
			}
		}
		if total < 5*570 {
			t.Errorf("%d grants in 5 minutes at 600 RPM; want at least 95%%", total)
		}
	})
}

func TestParseHeader(t *testing.T) {
	h := http.Header{}
	h.Set("x-ratelimit-limit-requests", "500")
	h.Set("x-ratelimit-remaining-requests", "499")
	h.Set("x-ratelimit-reset-requests", "120ms")
	h.Set("x-ratelimit-limit-tokens", "200000")
	h.Set("x-ratelimit-remaining-tokens", "185000")
	h.Set("x-ratelimit-reset-tokens", "4.5s")
	want := Feedback{RemainingRequests: 499, RemainingTokens: 185000, LimitRequests: 500, LimitTokens: 200000,
		ResetRequests: 120 * time.Millisecond, ResetTokens: 4500 * time.Millisecond}
	if got := ParseHeader(h); got != want {
		t.Errorf("ParseHeader = %+v; want %+v", got, want)
	}
	for _, tc := range []struct {
		name, remaining, reset string
		wantRemaining          int
		wantReset              time.Duration
	}{
		{"absent", "", "", -1, 0},
		{"minutes", "0", "6m0s", 0, 6 * time.Minute},
		{"plain seconds", "3", "1.5", 3, 1500 * time.Millisecond},
		{"garbage", "many", "soon", -1, 0},
		{"negative", "-4", "-1s", -1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.remaining != "" {
				h.Set("x-ratelimit-remaining-tokens", tc.remaining)
				h.Set("x-ratelimit-reset-tokens", tc.reset)
			}
			fb := ParseHeader(h)
			if fb.RemainingTokens != tc.wantRemaining || fb.ResetTokens != tc.wantReset {
				t.Errorf("remaining %d reset %s; want %d and %s", fb.RemainingTokens, fb.ResetTokens, tc.wantRemaining, tc.wantReset)
			}
		})
	}
}

func TestClientLinesAreWhole(t *testing.T) {
	// Many goroutines share the worker's stdout: every line must stay whole and parseable.
	var out testkit.Buffer
	inR, inW := io.Pipe()
	w := wire.NewWriter(&out)
	c := NewClient(w, inR)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			for range 50 {
				c.Reconcile(i, i+1)
				c.Feedback(StatusOnly(200))
			}
		})
	}
	wg.Wait()
	w.Flush() // reconcile and feedback lines are posted: they may wait wire.PostDelay
	inW.Close()
	<-c.Done()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 2000 {
		t.Fatalf("%d lines; want 2000", len(lines))
	}
	for _, line := range lines {
		if m, err := wire.Decode([]byte(line)); err != nil || !m.IsPermit() {
			t.Fatalf("line not understood: %q (%v)", line, err)
		}
	}
}

func acquire(seq int) wire.Msg {
	return wire.Msg{Type: wire.Acquire, Seq: uint64(seq), Tokens: 1}
}

func TestServerBoundsPending(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New(Config{RPM: 60})
		srv := NewServer(l)
		defer srv.Close()
		l.Feedback(Feedback{Status: 429, RetryAfter: time.Minute})
		var stdin testkit.Buffer
		srv.Attach(t.Context(), 1, &stdin)
		for seq := 1; seq <= MaxPending+1; seq++ {
			srv.Handle(1, acquire(seq))
		}
		synctest.Wait()
		want := fmt.Sprintf(`{"type":"grant","seq":%d,"error":"too many permits pending for this worker"}`+"\n", MaxPending+1)
		if got := stdin.String(); got != want {
			t.Errorf("stdin = %q; want only the refusal of the last acquire", got)
		}
		if s := l.State(); s.Waiting != MaxPending {
			t.Errorf("%d waiting; want %d", s.Waiting, MaxPending)
		}
		srv.Forget(1)
	})
}

func TestClientReadsOnlyGrants(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		inR, inW := io.Pipe()
		c := NewClient(wire.NewWriter(io.Discard), inR)
		errc := make(chan error, 2)
		go func() { errc <- c.Wait(t.Context(), 5) }()
		synctest.Wait()
		for _, line := range []string{
			"not json",
			`{"type":"stop"}`,
			`{"type":"grant","seq":99}`, // nobody waits for it
			`{"type":"grant","seq":1,"error":"too many permits pending for this worker"}`,
		} {
			if _, err := io.WriteString(inW, line+"\n"); err != nil {
				t.Fatal(err)
			}
		}
		if err := <-errc; !errors.Is(err, ErrRefused) {
			t.Errorf("Wait = %v; want ErrRefused", err)
		}
		go func() { errc <- c.Wait(t.Context(), 5) }()
		synctest.Wait()
		if _, err := io.WriteString(inW, `{"type":"grant","seq":2}`+"\n"); err != nil {
			t.Fatal(err)
		}
		if err := <-errc; err != nil {
			t.Errorf("Wait = %v; want granted", err)
		}
		inW.Close()
		<-c.Done()
		if !errors.Is(c.Err(), ErrCoordinatorGone) {
			t.Errorf("Err = %v; want ErrCoordinatorGone", c.Err())
		}
	})
}

// TestRunWideBudgetAcrossWorkers is the rule the coordinator relies on, on the fake clock: eight
// workers of four requests in flight each, sharing one Server, never get more than the budget in
// any minute, nor more than a second's worth plus the burst in any second, and together use
// nearly all of it.
func TestRunWideBudgetAcrossWorkers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const rpm, workers, concurrency = 600, 8, 4
		l := New(Config{RPM: rpm})
		srv := NewServer(l)
		defer srv.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		var mu sync.Mutex
		var grants []time.Time
		var wg sync.WaitGroup
		for w := range workers {
			c, disconnect := pipeWorker(t.Context(), srv, w)
			defer disconnect()
			for range concurrency {
				wg.Go(func() {
					for c.Wait(ctx, 1) == nil {
						mu.Lock()
						grants = append(grants, time.Now())
						mu.Unlock()
						time.Sleep(20 * time.Millisecond) // the request
					}
				})
			}
		}
		wg.Wait()
		start := grants[0]
		ones := make([]int, len(grants))
		for i := range ones {
			ones[i] = 1
		}
		if n, _ := windowMax(grants, ones, Window); n > rpm {
			t.Errorf("%d grants in one minute; budget %d", n, rpm)
		}
		perSecond := rpm / 60
		if n, _ := windowMax(grants, ones, time.Second); n > perSecond+perSecond/4+1 {
			t.Errorf("%d grants in one second; budget %d a second plus a quarter second's burst", n, perSecond)
		}
		late := 0
		for _, g := range grants {
			if g.Sub(start) >= Window {
				late++
			}
		}
		if use := float64(late) / rpm; use < 0.95 { // the second minute
			t.Errorf("used %.1f%% of the budget per minute after the first; want at least 95%%", 100*use)
		}
	})
}

// Without a limit, a worker sends at once and counts its requests after (took lines, no round
// trip); once the server shows a limit exists (a 429, or a limit stated in its headers), the
// coordinator ends that for every worker and requests wait for grants again.
func TestFreePermitsUntilALimitShows(t *testing.T) {
	for name, fb := range map[string]Feedback{
		"429":           {Status: http.StatusTooManyRequests, RetryAfter: 2 * time.Second},
		"stated limit":  {Status: http.StatusOK, LimitRequests: 60, RemainingRequests: 59, ResetRequests: time.Second},
		"server outage": {Outage: true, RetryAfter: 2 * time.Second},
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := New(Config{})
				srv := NewServer(l)
				defer srv.Close()
				c, disconnect := pipeWorker(t.Context(), srv, 1)
				defer disconnect()
				other, disconnectOther := pipeWorker(t.Context(), srv, 2)
				defer disconnectOther()
				synctest.Wait()
				if !c.free.Load() || !other.free.Load() {
					t.Fatal("workers not told permits are free")
				}
				start := time.Now()
				for range 20 {
					if err := c.Wait(t.Context(), 100); err != nil {
						t.Fatal(err)
					}
				}
				if time.Since(start) != 0 {
					t.Errorf("free permits took %s", time.Since(start))
				}
				time.Sleep(2 * wire.PostDelay)
				synctest.Wait()
				if s := l.State(); s.Granted != 20 || s.GrantedTokens != 2000 {
					t.Errorf("the coordinator counted %d requests, %d tokens; want 20, 2000", s.Granted, s.GrantedTokens)
				}
				c.Feedback(fb)
				time.Sleep(2 * wire.PostDelay)
				synctest.Wait()
				if c.free.Load() || other.free.Load() {
					t.Fatal("permits still free for a worker after the server showed a limit")
				}
				start = time.Now()
				if err := other.Wait(t.Context(), 1); err != nil {
					t.Fatal(err)
				}
				waited := time.Since(start)
				if fb.LimitRequests > 0 {
					if got := l.State().RPM; got != 60 {
						t.Errorf("limit in force %d a minute; want the stated 60", got)
					}
				} else if waited < time.Second {
					t.Errorf("a request after the limit showed waited %s; want the pause", waited)
				}
			})
		})
	}
}

// A limit given to the run, or a run that requires grants (a cost budget), means permits are
// never free.
func TestNoFreePermitsWithALimit(t *testing.T) {
	for name, srv := range map[string]func() *Server{
		"--tpm": func() *Server { return NewServer(New(Config{TPM: 1000})) },
		"grants required": func() *Server {
			s := NewServer(New(Config{}))
			s.RequireGrants()
			return s
		},
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := srv()
				defer srv.Close()
				c, disconnect := pipeWorker(t.Context(), srv, 1)
				defer disconnect()
				synctest.Wait()
				if c.free.Load() {
					t.Fatal("told permits are free")
				}
			})
		})
	}
}
