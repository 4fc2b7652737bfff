package estimate

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"github.com/trialcat/trialcat/internal/textfmt"
)

func TestPrint(t *testing.T) {
	tests := []struct {
		model    string
		rpm      int
		wantLast string
		want     []string
		dontWant []string
	}{
		{"gpt-5-mini", 0, `^estimate: 10 records, ~\d+ input tokens, ~\d+ output tokens, ~\$\d+\.\d+ with gpt-5-mini, ~[0-9.hms]+ wall time with 20 workers; ~\$\d+\.\d+ through the Batch API within 24 h$`,
			[]string{"largest uncertainty", "latency-bound", "gpt-5-mini *", "gpt-4o-mini", "cached"}, []string{"offline"}},
		{"gpt-4o-mini", 6, `^estimate: 10 records, ~\d+ input tokens, ~\d+ output tokens, ~\$\d+\.\d+ with gpt-4o-mini, ~1m45s wall time with 20 workers; ~\$\d+\.\d+ through the Batch API within 24 h$`,
			[]string{"does not reason", "rpm-bound"}, []string{"largest uncertainty"}},
		{"llama3", 0, `^estimate: 10 records, ~\d+ input tokens, ~\d+ output tokens, ~\$\? with llama3, ~[0-9.hms]+ wall time with 20 workers; ~\? through the Batch API within 24 h$`,
			[]string{"no price for llama3", "unknown price"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.model, func(t *testing.T) {
			opts := small(t)
			opts.Model, opts.RPM = tt.model, tt.rpm
			rep := runOK(t, opts)
			var b bytes.Buffer
			rep.Print(&b)
			out := b.String()
			lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
			last := lines[len(lines)-1]
			if !regexp.MustCompile(tt.wantLast).MatchString(last) {
				t.Errorf("last line %q does not match %s", last, tt.wantLast)
			}
			if !strings.Contains(last, thousandsFree(rep.InputTokens)) {
				t.Errorf("last line %q lacks the input tokens %d", last, rep.InputTokens)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tt.dontWant {
				if strings.Contains(out, w) {
					t.Errorf("output has %q:\n%s", w, out)
				}
			}
		})
	}
}

func thousandsFree(n int64) string {
	return "~" + strings.ReplaceAll(textfmt.Thousands(n), ",", "") + " input"
}

func TestNoCacheReason(t *testing.T) {
	tests := []struct {
		name string
		r    Report
		want string
	}{
		{"dynamic system", Report{SystemStatic: false, SystemTokens: 2000}, "differs between records"},
		{"no system", Report{SystemStatic: true}, "no system message"},
		{"short prefix", Report{SystemStatic: true, SystemTokens: 500, SchemaTokens: 300}, "800 tokens) is under the 1024"},
		{"first wave", Report{SystemStatic: true, SystemTokens: 1500, CachedPrefix: 1536, Records: 100, Wall: Wall{InFlight: 200}}, "all 100 requests start in the first wave of 200"},
	}
	for _, tt := range tests {
		if got := noCache(&tt.r); !strings.Contains(got, tt.want) {
			t.Errorf("%s: %q; want it to say %q", tt.name, got, tt.want)
		}
	}
}
