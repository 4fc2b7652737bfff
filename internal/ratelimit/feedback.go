package ratelimit

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Feedback is what one API answer says about the rate limits. Send one for every answer that
// carries x-ratelimit-* headers, and always for a 429.
type Feedback struct {
	// Status is the HTTP status; 429 (rate limited, not insufficient_quota) pauses and slows
	// every grant. Other statuses only carry the headers below.
	Status int
	// RetryAfter is the wait the server asked for (retry-after-ms or retry-after); 0 when none.
	RetryAfter time.Duration
	// RemainingRequests and RemainingTokens are x-ratelimit-remaining-requests and -tokens; -1
	// when unknown.
	RemainingRequests, RemainingTokens int
	// LimitRequests and LimitTokens are x-ratelimit-limit-requests and -tokens; 0 when unknown.
	// With them the limiter can tell how soon a partly drained server bucket has room again.
	LimitRequests, LimitTokens int
	// ResetRequests and ResetTokens are x-ratelimit-reset-requests and -tokens: when the
	// server's budget is whole again; 0 when unknown.
	ResetRequests, ResetTokens time.Duration
	// Outage says the request reached no server (refused, DNS, TLS): every grant pauses for
	// RetryAfter, then one request at a time probes until an answer comes back.
	Outage bool
}

// StatusOnly returns the Feedback of an answer with status and no rate-limit headers.
func StatusOnly(status int) Feedback {
	return Feedback{Status: status, RemainingRequests: -1, RemainingTokens: -1}
}

// ParseHeader reads the x-ratelimit-* headers of an API answer (OpenAI's names, also used by
// Azure OpenAI, vLLM behind a gateway and others). Status and RetryAfter are left for the caller,
// which has them already. Values it cannot read are unknown.
func ParseHeader(h http.Header) Feedback {
	return Feedback{
		RemainingRequests: headerInt(h, "x-ratelimit-remaining-requests", -1),
		RemainingTokens:   headerInt(h, "x-ratelimit-remaining-tokens", -1),
		LimitRequests:     headerInt(h, "x-ratelimit-limit-requests", 0),
		LimitTokens:       headerInt(h, "x-ratelimit-limit-tokens", 0),
		ResetRequests:     headerDuration(h, "x-ratelimit-reset-requests"),
		ResetTokens:       headerDuration(h, "x-ratelimit-reset-tokens"),
	}
}

func headerInt(h http.Header, key string, unknown int) int {
	v := strings.TrimSpace(h.Get(key))
	if v == "" {
		return unknown
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return unknown
	}
	return n
}

// headerDuration reads "6m0s", "1.5s", "20ms" (OpenAI's spelling) or a plain number of seconds.
func headerDuration(h http.Header, key string) time.Duration {
	v := strings.TrimSpace(h.Get(key))
	if v == "" {
		return 0
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return d
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil && s > 0 && s < 1e6 {
		return time.Duration(s * float64(time.Second))
	}
	return 0
}
