package modelinfo

import (
	"testing"
	"time"
)

func TestFamilyLatency(t *testing.T) {
	tests := []struct {
		model  string
		prefix string
		output int
		want   time.Duration
	}{
		{"gpt-5-mini", "gpt-5-mini", 800, 800*time.Millisecond + 8*time.Second},
		{"openai/gpt-5-mini-2025-08-07", "gpt-5-mini", 0, 800 * time.Millisecond},
		{"gpt-5.1", "gpt-5", 120, time.Second + 2*time.Second},
		{"gpt-4.1-mini", "gpt-4.1-mini", 100, 500*time.Millisecond + time.Second},
		{"gpt-4o-mini", "gpt-4o-mini", 90, 500*time.Millisecond + time.Second},
		{"o3", "o3", 600, 1500*time.Millisecond + 10*time.Second},
		{"llama3", "", 100, time.Second + 2*time.Second},
	}
	for _, tt := range tests {
		f := FamilyOf(tt.model)
		if f.Prefix != tt.prefix || f.Latency(tt.output) != tt.want {
			t.Errorf("%s: family %q latency %s; want %q, %s", tt.model, f.Prefix, f.Latency(tt.output), tt.prefix, tt.want)
		}
	}
}
