package proc

import (
	"slices"
	"testing"
)

func TestSplitCommand(t *testing.T) {
	for in, want := range map[string][]string{
		`server --records testdata/trials.jsonl`: {"server", "--records", "testdata/trials.jsonl"},
		`  a   b  `:                              {"a", "b"},
		`a 'b c' "d e" f\ g`:                     {"a", "b c", "d e", "f g"},
		`a "x \"y\" $z"`:                         {"a", `x "y" $z`},
		`a '' b`:                                 {"a", "", "b"},
		`a 'it'"'"'s'`:                           {"a", "it's"},
	} {
		got, err := SplitCommand(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("SplitCommand(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{``, `   `, `a 'b`, `a "b`, `a \`} {
		if got, err := SplitCommand(bad); err == nil {
			t.Errorf("SplitCommand(%q) = %q, want an error", bad, got)
		}
	}
}
