package quality

import (
	"slices"
	"testing"
)

func TestLeastConfidentFirst(t *testing.T) {
	conf := map[string]map[string]float64{
		"a": {"f": 1, "g": 1}, "b": {"f": 0.667, "g": 1}, "c": {"f": 1, "g": 0.333}, "d": {"f": 0.667, "g": 0.667},
	}
	if got := leastConfident([]string{"a", "b", "c", "d"}, conf, 3); !slices.Equal(got, []string{"c", "b", "d"}) {
		t.Errorf("least confident first = %v, want c (0.333), then b and d (0.667, in the run's order)", got)
	}
}
