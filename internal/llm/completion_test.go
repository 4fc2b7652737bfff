package llm

import (
	"encoding/json"
	"math"
	"testing"
)

// The answer's strings and counts read as encoding/json reads them, by the fast paths too.
func TestCompletionFieldsAsTheDecoderReadsThem(t *testing.T) {
	for _, raw := range []string{`"plain"`, `"esc\"aped\n"`, `"\u00e9"`, "\"bad \xff\"", `""`, `null`, `12`, `true`, `{"a":1}`, `["x"]`} {
		var got lenientString
		if err := json.Unmarshal([]byte(raw), &got); err != nil {
			t.Fatal(err)
		}
		var want string
		if json.Unmarshal([]byte(raw), &want) != nil {
			want = ""
		}
		if string(got) != want {
			t.Errorf("lenientString %s = %q, want %q", raw, got, want)
		}
	}
	for _, raw := range []string{`0`, `-0`, `12`, `12.9`, `-3.5`, `1e3`, `1E+2`, `1e400`, `-1e400`, `9223372036854775807`, `1e19`, `-1e19`, `"12"`, `null`, `true`, `[1]`} {
		var got count
		if err := json.Unmarshal([]byte(raw), &got); err != nil {
			t.Fatal(err)
		}
		var f float64
		var want count
		if json.Unmarshal([]byte(raw), &f) == nil {
			switch {
			case f >= math.MaxInt64:
				want = math.MaxInt64
			case f <= math.MinInt64:
				want = math.MinInt64
			default:
				want = count(f)
			}
		}
		if got != want {
			t.Errorf("count %s = %d, want %d", raw, got, want)
		}
	}
}
