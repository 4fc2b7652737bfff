package display

import (
	"testing"
	"time"

	"github.com/trialcat/trialcat/internal/tally"
)

func TestLine(t *testing.T) {
	tests := []struct {
		name string
		s    tally.Snapshot
		want string
	}{
		{
			name: "running",
			s: tally.Snapshot{Total: 400, Done: 240, Rate: 118.4, ETA: 81 * time.Second, ETAKnown: true, CostUSD: 0.01234,
				InputTokens: 51234, OutputTokens: 8123, Retries: 3, RateLimited: 1, Failed: 2, Restarts: 1, Running: 20},
			want: "progress 240/400 (60.0%) 118 rec/min eta 1m21s cost $0.0123 tokens 51234/8123 retries 3 (429s 1) failed 2 restarts 1 workers 20",
		},
		{
			name: "just started, a price unknown",
			s:    tally.Snapshot{Total: 7, Rate: 0, CostUnknown: true, Running: 2},
			want: "progress 0/7 (0.0%) 0.0 rec/min eta unknown cost $0.0000+unknown tokens 0/0 retries 0 (429s 0) failed 0 restarts 0 workers 2",
		},
		{
			name: "empty input",
			s:    tally.Snapshot{ETAKnown: true},
			want: "progress 0/0 (100.0%) 0.0 rec/min eta 0s cost $0.0000 tokens 0/0 retries 0 (429s 0) failed 0 restarts 0 workers 0",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Line(tt.s); got != tt.want {
				t.Errorf("\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestFormats(t *testing.T) {
	durations := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"}, {499 * time.Millisecond, "0s"}, {45 * time.Second, "45s"}, {81 * time.Second, "1m21s"},
		{time.Hour + 59*time.Minute + 59*time.Second, "1h59m"}, {50 * time.Hour, "50h0m"},
	}
	for _, tt := range durations {
		if got := fmtDuration(tt.d); got != tt.want {
			t.Errorf("fmtDuration(%s) = %q, want %q", tt.d, got, tt.want)
		}
	}
	counts := []struct {
		n    int64
		want string
	}{{0, "0"}, {9999, "9999"}, {51234, "51.2k"}, {3_400_000, "3.40M"}}
	for _, tt := range counts {
		if got := fmtCount(tt.n); got != tt.want {
			t.Errorf("fmtCount(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
	rates := []struct {
		r    float64
		want string
	}{{0, "0.0"}, {2.26, "2.3"}, {10, "10"}, {118.4, "118"}}
	for _, tt := range rates {
		if got := fmtRate(tt.r); got != tt.want {
			t.Errorf("fmtRate(%v) = %q, want %q", tt.r, got, tt.want)
		}
	}
}
