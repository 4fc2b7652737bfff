package estimate

import (
	"time"
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
