package estimate

import (
	"strings"
	"time"

	"github.com/trialcat/trialcat/internal/modelinfo"
)

// StartOverhead is added to every wall-time estimate: checking the input, writing the batch
// files and starting the workers.
const StartOverhead = 5 * time.Second

// Bounds of the wall time; Wall.Bound names the one that dominates.
const (
	BoundLatency = "latency" // requests in flight (workers × concurrency) and per-request latency
	BoundRPM     = "rpm"     // --rpm
	BoundTPM     = "tpm"     // --tpm
)

// Family is the default latency model of a family of models: a request takes FirstToken plus
// its output tokens (reasoning included) at TokensPerSecond.
type Family struct {
	// Prefix matches model names (lowercase, without a provider prefix); the longest match wins.
	Prefix          string
	FirstToken      time.Duration
	TokensPerSecond float64
}

// Families are the default latency models, typical of OpenAI's standard tier in late 2025 for
// prompts of a few thousand tokens. They are rough: measure a few requests and pass --latency.
func Families() []Family {
	return []Family{
		{"gpt-5-nano", 800 * time.Millisecond, 150},
		{"gpt-5-mini", 800 * time.Millisecond, 100},
		{"gpt-5", time.Second, 60}, // gpt-5, gpt-5.1, gpt-5.2
		{"o4-mini", time.Second, 120},
		{"o3-mini", time.Second, 120},
		{"o3", 1500 * time.Millisecond, 60},
		{"o1", 2 * time.Second, 60},
		{"gpt-4.1-nano", 400 * time.Millisecond, 150},
		{"gpt-4.1-mini", 500 * time.Millisecond, 100},
		{"gpt-4.1", 600 * time.Millisecond, 70},
		{"gpt-4o-mini", 500 * time.Millisecond, 90},
		{"gpt-4o", 600 * time.Millisecond, 80},
	}
}

// fallbackFamily is the latency model of an unknown model (a local server, say).
func fallbackFamily() Family { return Family{Prefix: "", FirstToken: time.Second, TokensPerSecond: 50} }

// FamilyOf returns the latency model of model.
func FamilyOf(model string) Family {
	m := modelinfo.Normalize(model)
	best := fallbackFamily()
	for _, f := range Families() {
		if strings.HasPrefix(m, f.Prefix) && len(f.Prefix) > len(best.Prefix) {
			best = f
		}
	}
	return best
}

// Latency is the default per-request latency of model for outputTokens tokens of output.
func (f Family) Latency(outputTokens int) time.Duration {
	return f.FirstToken + time.Duration(float64(outputTokens)/f.TokensPerSecond*float64(time.Second))
}

// Wall is the expected wall time of a run.
type Wall struct {
	// Latency is the per-request latency assumed; LatencyDefault is set when it comes from the
	// model's Family rather than --latency.
	Latency        time.Duration
	LatencyDefault bool
	// InFlight is workers × concurrency.
	InFlight int
	// LatencyBound is records × Latency / InFlight.
	LatencyBound time.Duration
	// RPMBound is records / rpm minutes; 0 when --rpm is 0 (unlimited).
	RPMBound time.Duration
	// TPMBound is tokens / tpm minutes; 0 when --tpm is 0 (unlimited).
	TPMBound time.Duration
	// Overhead is StartOverhead.
	Overhead time.Duration
	// Total is the largest bound plus Overhead.
	Total time.Duration
	// Bound names the largest bound: BoundLatency, BoundRPM or BoundTPM.
	Bound string
}

// WallTime estimates the wall time of records requests of latency each, tokens tokens in all
// (input and output), with workers × concurrency requests in flight and rpm and tpm limits
// (0: unlimited).
func WallTime(records, tokens int64, latency time.Duration, workers, concurrency, rpm, tpm int) Wall {
	w := Wall{Latency: latency, InFlight: max(1, workers) * max(1, concurrency), Overhead: StartOverhead}
	w.LatencyBound = scale(records, latency, int64(w.InFlight))
	if rpm > 0 {
		w.RPMBound = scale(records, time.Minute, int64(rpm))
	}
	if tpm > 0 {
		w.TPMBound = scale(tokens, time.Minute, int64(tpm))
	}
	w.Bound, w.Total = BoundLatency, w.LatencyBound
	if w.RPMBound > w.Total {
		w.Bound, w.Total = BoundRPM, w.RPMBound
	}
	if w.TPMBound > w.Total {
		w.Bound, w.Total = BoundTPM, w.TPMBound
	}
	w.Total += w.Overhead
	return w
}

// scale returns n × d / per, computed in floating point so that large runs cannot overflow.
func scale(n int64, d time.Duration, per int64) time.Duration {
	v := float64(n) * float64(d) / float64(per)
	if v >= float64(1<<62) {
		return time.Duration(1 << 62)
	}
	return time.Duration(v)
}
