package report

import (
	"fmt"
	"math"
	"testing"

	"github.com/trialcat/trialcat/internal/textfmt"
)

func TestHistogramBucketsAndQuantiles(t *testing.T) {
	tests := []struct {
		name     string
		values   []float64
		maxBars  int
		buckets  []bucket
		p50, max float64
		invalid  int64
	}{
		{name: "zeros", values: []float64{0, 0, 0}, maxBars: 36,
			buckets: []bucket{{0, 1, 3}}, p50: 0, max: 0},
		{name: "bounds are inclusive below", values: []float64{1, 1.19, 1.2, 8, 10}, maxBars: 36,
			buckets: []bucket{{1, 1.2, 2}, {1.2, 1.5, 1}, {1.5, 2, 0}, {2, 2.5, 0}, {2.5, 3, 0}, {3, 4, 0}, {4, 5, 0},
				{5, 6, 0}, {6, 8, 0}, {8, 10, 1}, {10, 12, 1}},
			p50: 1.2, max: 10},
		{name: "wide range is coarsened", values: []float64{1, 150, 2e5}, maxBars: 10,
			buckets: []bucket{{1, 2, 1}, {2, 5, 0}, {5, 10, 0}, {10, 20, 0}, {20, 50, 0}, {50, 100, 0}, {100, 200, 1},
				{200, 500, 0}, {500, 1000, 0}, {1000, 2000, 0}, {2000, 5000, 0}, {5000, 1e4, 0}, {1e4, 2e4, 0},
				{2e4, 5e4, 0}, {5e4, 1e5, 0}, {1e5, 2e5, 0}, {2e5, 5e5, 1}},
			p50: 150, max: 2e5},
		{name: "huge and invalid", values: []float64{5e10, -1, math.NaN()}, maxBars: 36,
			buckets: []bucket{{8e9, math.Inf(1), 1}}, p50: 5e10, max: 5e10, invalid: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHistogram()
			for _, v := range tt.values {
				h.add(v)
			}
			got := h.buckets(tt.maxBars)
			if fmt.Sprint(got) != fmt.Sprint(tt.buckets) {
				t.Errorf("buckets\n got %v\nwant %v", got, tt.buckets)
			}
			// The median lies in the right bucket: between the bucket's bounds.
			if q := h.quantile(0.5); q < tt.p50*0.8 || q > tt.p50*1.25 {
				t.Errorf("p50 = %v, want about %v", q, tt.p50)
			}
			if h.max != tt.max || h.invalid != tt.invalid {
				t.Errorf("max %v invalid %d, want %v and %d", h.max, h.invalid, tt.max, tt.invalid)
			}
		})
	}
}

func TestCounterTopAndFreeText(t *testing.T) {
	tests := []struct {
		name     string
		values   []string
		limit    int
		top      int
		want     string // top values
		rest     int64
		freeText bool
	}{
		{name: "ties by value", values: []string{"b", "a", "c", "a", "b"}, limit: 10, top: 2,
			want: "[{a 2} {b 2}]", rest: 1},
		{name: "few distinct values are charted even when all differ", values: []string{"x", "y", "z"}, limit: 10, top: 20,
			want: "[{x 1} {y 1} {z 1}]"},
		{name: "values past the limit are other", values: []string{"a", "b", "c", "a", "c", "d"}, limit: 2, top: 20,
			want: "[{a 2} {b 1}]", rest: 3, freeText: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCounter(tt.limit)
			for _, v := range tt.values {
				c.add(v)
			}
			top, rest, _ := c.top(tt.top, nil)
			if fmt.Sprint(top) != tt.want || rest != tt.rest {
				t.Errorf("top = %v rest %d, want %s rest %d", top, rest, tt.want, tt.rest)
			}
			if c.freeText() != tt.freeText {
				t.Errorf("freeText = %v, want %v", c.freeText(), tt.freeText)
			}
		})
	}
}

func TestFormats(t *testing.T) {
	tests := []struct{ got, want string }{
		{textfmt.Thousands(0), "0"}, {textfmt.Thousands(1234567), "1,234,567"}, {textfmt.Thousands(-1000), "-1,000"},
		{usd(0), "$0.00"}, {usd(0.005), "$0.005"}, {usd(0.0123), "$0.0123"}, {usd(12.345), "$12.35"}, {usd(12345.6), "$12,346"},
		{seconds(0.475), "0.47 s"}, {seconds(75), "1 m 15 s"}, {seconds(7300), "2 h 01 m"},
		{millis(850), "850ms"}, {millis(1500), "1.5s"}, {count(2500), "2.5k"}, {count(3e6), "3M"},
		{percent(1, 3), "33%"}, {percent(1, 300), "0.3%"}, {clip("abcdef", 4), "abc…"},
		{clock(90, 30), "1m30s"}, {clock(0.25, 0.05), "0.25s"}, {clock(7200, 3600), "2h"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}
