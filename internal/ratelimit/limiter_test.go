package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestNeverOverBudget(t *testing.T) {
	for _, tc := range []struct {
		name     string
		rpm, tpm int
		callers  int
		size     func(caller, i int) int
		// wantUse is the least share of the binding limit used per minute on average after the
		// first. The margin costs 1/61; requests that are a big share of the budget cost more,
		// since a FIFO limiter cannot reorder them to fill a minute's gaps: a minute can go
		// without up to one largest request, whatever order the callers arrive in (which the
		// scheduler decides), so the bound is 1 - largest/limit less the margin.
		wantUse float64
	}{
		{"requests, many callers", 600, 0, 50, one, 0.95},
		{"requests, few callers", 60, 0, 3, one, 0.95},
		{"requests, high rate", 6000, 0, 40, one, 0.95},
		{"tokens, mixed sizes", 0, 200_000, 40, mixedSizes(500, 5000), 0.95},
		{"tokens, requests up to 7% of the budget", 0, 60_000, 20, mixedSizes(100, 4000), 0.90},
		{"tokens, requests up to 30% of the budget", 0, 20_000, 8, mixedSizes(500, 6000), 0.68},
		{"both, tokens bind", 600, 100_000, 30, mixedSizes(50, 2000), 0.95},
		{"both, both near", 600, 300_000, 60, mixedSizes(100, 1000), 0.95},
		{"both, requests bind", 120, 1_000_000, 30, mixedSizes(50, 2000), 0.95},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := New(Config{RPM: tc.rpm, TPM: tc.tpm})
				g := observe(l)
				start := time.Now()
				const run = 4 * time.Minute
				ctx, cancel := context.WithTimeout(t.Context(), run)
				defer cancel()
				busy(ctx, l, tc.callers, tc.size)()
				at, tok := g.snapshot()

				count, tokens := windowMax(at, tok, Window)
				if tc.rpm > 0 && count > tc.rpm {
					t.Errorf("%d requests in one minute, limit %d", count, tc.rpm)
				}
				if tc.tpm > 0 && tokens > tc.tpm {
					t.Errorf("%d tokens in one minute, limit %d", tokens, tc.tpm)
				}

				n, sum := 0, 0
				for i, a := range at {
					if a.After(start.Add(Window)) {
						n++
						sum += tok[i]
					}
				}
				minutes := (run - Window).Minutes()
				var reqUse, tokUse float64
				if tc.rpm > 0 {
					reqUse = float64(n) / minutes / float64(tc.rpm)
				}
				if tc.tpm > 0 {
					tokUse = float64(sum) / minutes / float64(tc.tpm)
				}
				if use := max(reqUse, tokUse); use < tc.wantUse {
					t.Errorf("used %.1f%% of RPM and %.1f%% of TPM per minute; want %.0f%% of the binding limit",
						100*reqUse, 100*tokUse, 100*tc.wantUse)
				}
				t.Logf("per minute: %.1f%% of RPM, %.1f%% of TPM; fullest minute: %d requests, %d tokens",
					100*reqUse, 100*tokUse, count, tokens)
			})
		})
	}
}

func one(int, int) int { return 1 }

func mixedSizes(lo, hi int) func(caller, i int) int {
	return func(caller, i int) int {
		r := rand.New(rand.NewPCG(uint64(caller), uint64(i)))
		return lo + r.IntN(hi-lo+1)
	}
}

func TestNoInitialBurst(t *testing.T) {
	// A limit of 6000 RPM must not mean 6000 requests in the first instant: a server that
	// refills its bucket continuously would refuse most of them. At most Burst worth goes at
	// once, then the rate (6000 per 61s, 98 a second).
	for _, burst := range []time.Duration{0, 100 * time.Millisecond, time.Second} {
		t.Run(fmt.Sprint(burst), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := New(Config{RPM: 6000, Burst: burst})
				g := observe(l)
				ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
				defer cancel()
				busy(ctx, l, 300, one)()
				at, tok := g.snapshot()
				if burst == 0 {
					burst = DefaultBurst
				}
				rate := 6000 / (Window + DefaultMargin).Seconds()
				for _, w := range []time.Duration{time.Nanosecond, 100 * time.Millisecond, time.Second} {
					want := int(rate*(burst+w).Seconds()) + 1
					if got, _ := windowMax(at, tok, w); got > want {
						t.Errorf("%d requests within %s; want at most %d (burst %s)", got, w, want, burst)
					}
				}
				if want := int(2 * rate); len(at) < want {
					t.Errorf("%d requests in 2s; want at least %d", len(at), want)
				}
			})
		})
	}
}

func TestFIFO(t *testing.T) {
	// Callers are served in arrival order: the big request is not overtaken by the small ones
	// behind it, even though they would fit in the budget sooner.
	synctest.Test(t, func(t *testing.T) {
		l := New(Config{TPM: 6100}) // 100 tokens a second
		sizes := []int{50, 3000, 10, 10, 10, 2000, 10}
		var mu sync.Mutex
		var order []int
		var wg sync.WaitGroup
		for i, n := range sizes {
			wg.Go(func() {
				if err := l.Wait(t.Context(), n); err != nil {
					t.Error(err)
				}
				mu.Lock()
				order = append(order, i)
				mu.Unlock()
			})
			synctest.Wait() // queued before the next one arrives
		}
		wg.Wait()
		for i, got := range order {
			if got != i {
				t.Fatalf("grant order %v; want arrival order", order)
			}
		}
	})
}

func TestBigRequestNotStarved(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New(Config{TPM: 61_000}) // 1000 tokens a second
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		stop := busy(ctx, l, 20, func(int, int) int { return 100 })
		time.Sleep(10 * time.Second)
		start := time.Now()
		if err := l.Wait(ctx, 20_000); err != nil {
			t.Fatal(err)
		}
		// Ahead of it: at most 20 small requests (2,000 tokens); then its own 20,000 may need
		// up to 20s of refill, all within the minute's budget.
		if waited := time.Since(start); waited > 25*time.Second {
			t.Errorf("a 20,000-token request waited %s behind 100-token ones; want at most 25s", waited)
		}
		cancel()
		stop()
	})
}

func TestWaitCanceled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New(Config{RPM: 61}) // one a second
		if err := l.Wait(t.Context(), 1); err != nil {
			t.Fatal(err)
		}
		cause := errors.New("record abandoned")
		ctx, cancel := context.WithCancelCause(t.Context())
		time.AfterFunc(500*time.Millisecond, func() { cancel(cause) })
		if err := l.Wait(ctx, 1); !errors.Is(err, cause) {
			t.Fatalf("Wait = %v; want the context's cause", err)
		}
		// The canceled wait spent nothing: the next request goes at 1s, not 2s.
		start := time.Now()
		if err := l.Wait(t.Context(), 1); err != nil {
			t.Fatal(err)
		}
		if got := time.Since(start); got != 500*time.Millisecond {
			t.Errorf("next grant after %s; want 500ms (at 1s)", got)
		}
		if s := l.State(); s.Waiting != 0 || s.Granted != 2 {
			t.Errorf("State = %+v; want nobody waiting and 2 grants", s)
		}
	})
}

func TestReconcile(t *testing.T) {
	// 61,000 TPM is 1,000 tokens a second; the bucket holds 100 (a burst of 0.1s).
	for _, tc := range []struct {
		name      string
		actual    int // of the first request of 1,000 estimated tokens; -1: no Reconcile
		wantAfter time.Duration
	}{
		{"no reconcile: the estimate stands", -1, time.Second},
		{"used less: the rest comes back", 100, 100 * time.Millisecond},
		{"used nothing (refused)", 0, 0},
		{"used more: what follows pays", 2000, 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := New(Config{TPM: 61_000, Burst: 100 * time.Millisecond})
				start := time.Now()
				if err := l.Wait(t.Context(), 1000); err != nil {
					t.Fatal(err)
				}
				if tc.actual >= 0 {
					l.Reconcile(1000, tc.actual)
				}
				if err := l.Wait(t.Context(), 100); err != nil {
					t.Fatal(err)
				}
				if got := time.Since(start); got != tc.wantAfter {
					t.Errorf("second request granted after %s; want %s", got, tc.wantAfter)
				}
			})
		})
	}
}

func TestReconcileKeepsMinuteWithinLimit(t *testing.T) {
	// Estimates far off in both directions, reconciled as answers come back, must still keep
	// every minute within the limit as the server counts real usage.
	synctest.Test(t, func(t *testing.T) {
		l := New(Config{TPM: 30_000})
		var mu sync.Mutex
		var at []time.Time
		var used []int
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
		defer cancel()
		var wg sync.WaitGroup
		for c := range 10 {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(c), 7))
				for ctx.Err() == nil {
					est := 200 + r.IntN(1000)
					if l.Wait(ctx, est) != nil {
						return
					}
					actual := est/2 + r.IntN(est) // from half to 1.5 times the estimate
					mu.Lock()
					at, used = append(at, time.Now()), append(used, actual)
					mu.Unlock()
					time.Sleep(time.Duration(200+r.IntN(2000)) * time.Millisecond)
					l.Reconcile(est, actual)
				}
			})
		}
		wg.Wait()
		// Real usage only becomes known after the answer, so the limiter may trail it by what
		// is in flight; it must not drift beyond that.
		inFlight := 10 * 1800
		if _, tokens := windowMax(at, used, Window); tokens > 30_000+inFlight {
			t.Errorf("%d tokens used in one minute; limit 30000 plus at most %d in flight", tokens, inFlight)
		}
	})
}

func TestRateLimitedPausesAndRecovers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New(Config{RPM: 610}) // 10 a second
		g := observe(l)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		stop := busy(ctx, l, 20, one)
		start := time.Now()
		time.Sleep(10 * time.Second)

		// A burst of 429s: one pause, one cut.
		for range 10 {
			l.Feedback(Feedback{Status: 429, RetryAfter: 2 * time.Second, RemainingRequests: -1, RemainingTokens: -1})
		}
		hit := time.Now()
		if s := l.State(); s.Factor != 0.8 || s.Paused != 2*time.Second || s.RateLimited != 10 {
			t.Fatalf("after a burst of 429s State = %+v; want factor 0.8, paused 2s, 10 rate limited", s)
		}
		time.Sleep(5 * time.Second) // grants resume at 2s, then recovery begins at 5s
		time.Sleep(25 * time.Second)
		if s := l.State(); s.Factor != 1 {
			t.Errorf("30s after the last 429 factor = %v; want 1 (recovered)", s.Factor)
		}
		time.Sleep(10 * time.Second)
		cancel()
		stop()

		at, _ := g.snapshot()
		count := func(from, to time.Duration) int {
			n := 0
			for _, a := range at {
				if d := a.Sub(start); d >= from && d < to {
					n++
				}
			}
			return n
		}
		before, pause := count(0, 10*time.Second), count(10*time.Second+time.Millisecond, 12*time.Second)
		slow, after := count(12*time.Second, 15*time.Second), count(hit.Sub(start)+30*time.Second, hit.Sub(start)+40*time.Second)
		if pause != 0 {
			t.Errorf("%d grants during the 2s retry-after pause; want 0", pause)
		}
		if before < 98 || after < 98 {
			t.Errorf("%d grants in the 10s before and %d in the 10s after; want about 100 (10 a second)", before, after)
		}
		if slow > 27 {
			t.Errorf("%d grants in the 3s after the pause; want at most 27 (8 a second, not 10)", slow)
		}
	})
}

func TestRepeated429sCutFurther(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New(Config{RPM: 600, TPM: 100_000})
		want := 1.0
		for range 15 {
			l.Feedback(StatusOnly(429))
			want = max(0.1, want*0.8)
			if got := l.State().Factor; got < want-1e-9 || got > want+1e-9 {
				t.Fatalf("factor %v; want %v", got, want)
			}
			time.Sleep(3 * time.Second) // past the hold, before any recovery
		}
		if want != 0.1 {
			t.Fatalf("floor not reached: %v", want)
		}
	})
}

func TestUnlimitedHonoursPauses(t *testing.T) {
	for _, tc := range []struct {
		name string
		fb   Feedback
		want time.Duration
	}{
		{"no 429", StatusOnly(200), 0},
		{"429 with retry-after", Feedback{Status: 429, RetryAfter: 3 * time.Second, RemainingRequests: -1, RemainingTokens: -1}, 3 * time.Second},
		{"429 without retry-after", StatusOnly(429), DefaultPause},
		{"429 asking too much", Feedback{Status: 429, RetryAfter: time.Hour}, MaxPause},
		{"server has no requests left", Feedback{Status: 200, RemainingRequests: 0, ResetRequests: 4 * time.Second, RemainingTokens: -1}, 4 * time.Second},
		{"server has some requests left", Feedback{Status: 200, RemainingRequests: 1, ResetRequests: 4 * time.Second, RemainingTokens: -1}, 0},
		{"server refills requests steadily", Feedback{Status: 200, RemainingRequests: 0, LimitRequests: 100, ResetRequests: 10 * time.Second, RemainingTokens: -1}, 100 * time.Millisecond},
		{"server has too few tokens left", Feedback{Status: 200, RemainingRequests: -1, RemainingTokens: 50, ResetTokens: 6 * time.Second}, 6 * time.Second},
		{"remaining without reset says nothing", Feedback{Status: 200}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := New(Config{})
				l.Feedback(tc.fb)
				start := time.Now()
				if err := l.Wait(t.Context(), 100); err != nil {
					t.Fatal(err)
				}
				if got := time.Since(start); got != tc.want {
					t.Errorf("Wait took %s; want %s", got, tc.want)
				}
			})
		})
	}
}

func TestRemainingCountsOwnGrants(t *testing.T) {
	// The server said 3 requests are left: the limiter spends them, then waits for the reset.
	synctest.Test(t, func(t *testing.T) {
		l := New(Config{RPM: 6000})
		l.Feedback(Feedback{Status: 200, RemainingRequests: 3, ResetRequests: 5 * time.Second, RemainingTokens: -1})
		start := time.Now()
		for range 4 {
			if err := l.Wait(t.Context(), 1); err != nil {
				t.Fatal(err)
			}
		}
		if got := time.Since(start); got != 5*time.Second {
			t.Errorf("4th request after %s; want 5s (the reset)", got)
		}
	})
}

func TestInjectedClock(t *testing.T) {
	// In a bubble, synctest.Wait returns once every goroutine is blocked: a grant due before
	// the clock reached its time has been delivered by then, so "not yet" is a real check.
	synctest.Test(t, func(t *testing.T) {
		c := newFakeClock()
		l := New(Config{RPM: 61, Clock: c}) // one a second
		if err := l.Wait(t.Context(), 1); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- l.Wait(context.Background(), 1) }()
		synctest.Wait()
		if l.State().Waiting != 1 {
			t.Fatal("the second Wait is not queued")
		}
		c.Advance(999 * time.Millisecond)
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("granted before its time (err %v)", err)
		default:
		}
		c.Advance(time.Millisecond)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

func TestOutagePausesEveryoneThenProbesOneAtATime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New(Config{}) // no limits: grants at once but for outages
		if err := l.Wait(t.Context(), 1); err != nil {
			t.Fatal(err)
		}
		l.Feedback(Feedback{Outage: true, RetryAfter: 2 * time.Second})
		var granted atomicCount
		for range 5 {
			go func() {
				if l.Wait(t.Context(), 1) == nil {
					granted.add()
				}
			}()
		}
		time.Sleep(1900 * time.Millisecond)
		synctest.Wait()
		if n := granted.get(); n != 0 {
			t.Fatalf("%d granted during the outage pause", n)
		}
		time.Sleep(200 * time.Millisecond)
		synctest.Wait()
		if n := granted.get(); n != 1 {
			t.Fatalf("%d granted after the pause; want one probe", n)
		}
		// The probe fails too: pause again, one more probe after it.
		l.Feedback(Feedback{Outage: true, RetryAfter: time.Second})
		time.Sleep(1100 * time.Millisecond)
		synctest.Wait()
		if n := granted.get(); n != 2 {
			t.Fatalf("%d granted; want a second probe", n)
		}
		// It answers: everyone goes.
		l.Feedback(StatusOnly(200))
		synctest.Wait()
		if n := granted.get(); n != 5 {
			t.Fatalf("%d granted once the server answered; want all 5", n)
		}
	})
}

type atomicCount struct {
	mu sync.Mutex
	n  int
}

func (c *atomicCount) add() { c.mu.Lock(); c.n++; c.mu.Unlock() }
func (c *atomicCount) get() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func TestLearnsTheKeysLimitsFromTheServer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var learned []string
		l := New(Config{TPM: 1_000_000, OnLearn: func(what string, n int) { learned = append(learned, fmt.Sprint(what, " ", n)) }})
		g := observe(l)
		// No --rpm: the first answer says the key allows 120 requests a minute, and 200,000
		// tokens, below the configured 1,000,000.
		l.Feedback(Feedback{Status: 200, LimitRequests: 120, LimitTokens: 200_000, RemainingRequests: -1, RemainingTokens: -1})
		if s := l.State(); s.RPM != 120 || s.TPM != 200_000 {
			t.Fatalf("limits in force %d RPM, %d TPM; want the server's 120 and 200000", s.RPM, s.TPM)
		}
		if fmt.Sprint(learned) != "[requests 120 tokens 200000]" {
			t.Errorf("learned %v", learned)
		}
		// A higher stated limit later does not raise it.
		l.Feedback(Feedback{Status: 200, LimitRequests: 10_000, RemainingRequests: -1, RemainingTokens: -1})
		if s := l.State(); s.RPM != 120 {
			t.Errorf("RPM %d after a higher limit was stated; want 120", s.RPM)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
		defer cancel()
		busy(ctx, l, 16, one)()
		at, tok := g.snapshot()
		if n, _ := windowMax(at, tok, Window); n > 120 {
			t.Errorf("%d grants in one minute after learning a limit of 120", n)
		}
		if len(at) < 3*120*95/100 {
			t.Errorf("%d grants in 3 minutes at a learned 120 RPM; want nearly all of it", len(at))
		}
	})
}
