package estimate

import (
	"testing"
	"time"

	"github.com/trialcat/trialcat/internal/modelinfo"
)

func TestWallTimeBound(t *testing.T) {
	tests := []struct {
		name                           string
		records, tokens                int64
		latency                        time.Duration
		workers, concurrency, rpm, tpm int
		wantBound                      string
		wantTotal                      time.Duration
	}{
		{"latency-bound, no limits", 1000, 3_000_000, 4 * time.Second, 20, 1, 0, 0, BoundLatency, 200 * time.Second},
		{"latency-bound, limits loose", 1000, 3_000_000, 4 * time.Second, 10, 2, 10_000, 10_000_000, BoundLatency, 200 * time.Second},
		{"concurrency multiplies", 1000, 3_000_000, 4 * time.Second, 20, 5, 0, 0, BoundLatency, 40 * time.Second},
		{"rpm-bound", 1000, 3_000_000, 4 * time.Second, 20, 1, 100, 0, BoundRPM, 10 * time.Minute},
		{"rpm-bound beats tpm", 1000, 3_000_000, 4 * time.Second, 20, 1, 60, 1_000_000, BoundRPM, 1000 * time.Second},
		{"tpm-bound", 1000, 3_000_000, 4 * time.Second, 20, 1, 500, 100_000, BoundTPM, 30 * time.Minute},
		{"tpm-bound with many workers", 1_000_000, 3_000_000_000, 8 * time.Second, 1000, 8, 30_000, 10_000_000, BoundTPM, 300 * time.Minute},
	}
	for _, tt := range tests {
		w := WallTime(tt.records, tt.tokens, tt.latency, tt.workers, tt.concurrency, tt.rpm, tt.tpm)
		if w.Bound != tt.wantBound || w.Total != tt.wantTotal+StartOverhead {
			t.Errorf("%s: bound %s, total %s; want %s, %s + %s overhead (bounds: latency %s, rpm %s, tpm %s)",
				tt.name, w.Bound, w.Total, tt.wantBound, tt.wantTotal, StartOverhead, w.LatencyBound, w.RPMBound, w.TPMBound)
		}
		if w.InFlight != tt.workers*tt.concurrency {
			t.Errorf("%s: InFlight = %d; want %d", tt.name, w.InFlight, tt.workers*tt.concurrency)
		}
	}
}

// TestRunWall checks that the run's flags reach the wall-time estimate.
func TestRunWall(t *testing.T) {
	tests := []struct {
		name      string
		change    func(*Options)
		wantBound string
	}{
		{"default latency", func(o *Options) {}, BoundLatency},
		{"rpm", func(o *Options) { o.RPM = 10 }, BoundRPM},
		{"tpm", func(o *Options) { o.TPM = 20_000 }, BoundTPM},
		{"latency flag", func(o *Options) { o.Latency = time.Minute; o.RPM = 10_000 }, BoundLatency},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := small(t)
			tt.change(&opts)
			rep := runOK(t, opts)
			if rep.Wall.Bound != tt.wantBound {
				t.Errorf("bound %s; want %s (%+v)", rep.Wall.Bound, tt.wantBound, rep.Wall)
			}
			// The bound, computed here by hand: records over the requests in flight at the
			// latency, records over RPM, or tokens over TPM, plus the start-up overhead.
			slots := float64(max(1, opts.Workers) * max(1, opts.Concurrency))
			bound := map[string]float64{
				BoundLatency: float64(rep.Records) / slots * rep.Wall.Latency.Seconds(),
				BoundRPM:     float64(rep.Records) / float64(max(opts.RPM, 1)) * 60,
				BoundTPM:     float64(rep.InputTokens+rep.OutputTokens) / float64(max(opts.TPM, 1)) * 60,
			}[tt.wantBound]
			want := time.Duration(bound*float64(time.Second)) + StartOverhead
			if d := rep.Wall.Total - want; d < -time.Millisecond || d > time.Millisecond || rep.Costs[0].Wall != rep.Wall.Total {
				t.Errorf("total %s (table %s); want %s", rep.Wall.Total, rep.Costs[0].Wall, want)
			}
			if opts.Latency > 0 && (rep.Wall.Latency != opts.Latency || rep.Wall.LatencyDefault) {
				t.Errorf("latency %s default %v; want --latency %s", rep.Wall.Latency, rep.Wall.LatencyDefault, opts.Latency)
			}
			if opts.Latency == 0 && rep.Wall.Latency != modelinfo.FamilyOf(opts.Model).Latency(rep.Output.PerRequest) {
				t.Errorf("latency %s; want the gpt-5-mini default", rep.Wall.Latency)
			}
		})
	}
}
