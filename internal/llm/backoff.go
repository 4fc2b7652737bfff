package llm

import (
	"math/rand/v2"
	"time"
)

// Backoff defaults, used where a Backoff field is zero.
const (
	DefaultBackoffBase   = 500 * time.Millisecond
	DefaultBackoffMax    = 30 * time.Second
	DefaultMaxRetryAfter = 60 * time.Second
)

// Backoff computes the pause between attempts: exponential with full jitter, but never shorter
// than the wait the server asked for (capped at MaxRetryAfter).
type Backoff struct {
	// Base is the ceiling of the first pause; 0 means DefaultBackoffBase.
	Base time.Duration
	// Max caps the exponential ceiling; 0 means DefaultBackoffMax.
	Max time.Duration
	// MaxRetryAfter caps an honoured retry-after; 0 means DefaultMaxRetryAfter.
	MaxRetryAfter time.Duration
}

// Delay returns the pause after failed attempt number attempt (1-based): a uniform draw in
// [0, min(Max, Base*2^(attempt-1))), raised to e.RetryAfter (capped at MaxRetryAfter) when the
// server asked for a wait. rnd returns values in [0,1); nil means math/rand/v2.
func (b Backoff) Delay(attempt int, e *Error, rnd func() float64) time.Duration {
	base, maxD, maxRA := b.Base, b.Max, b.MaxRetryAfter
	if base <= 0 {
		base = DefaultBackoffBase
	}
	if maxD <= 0 {
		maxD = DefaultBackoffMax
	}
	if maxRA <= 0 {
		maxRA = DefaultMaxRetryAfter
	}
	if rnd == nil {
		rnd = rand.Float64
	}
	ceil := maxD
	if n := attempt - 1; n < 32 {
		if n < 0 {
			n = 0
		}
		if c := base << n; c > 0 && c < maxD {
			ceil = c
		}
	}
	r := rnd()
	if r < 0 || r >= 1 {
		r = 0
	}
	d := time.Duration(r * float64(ceil))
	if e != nil && e.RetryAfter > 0 {
		d = max(d, min(e.RetryAfter, maxRA))
	}
	return d
}
