package compare

import (
	"math"
	"testing"
)

func pairs(spec map[[2]string]int) []pair {
	var out []pair
	for k, n := range spec {
		for range n {
			out = append(out, pair{k[0], k[1]})
		}
	}
	return out
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// The figures below are computed by hand.
func TestKappaAgainstHandComputedTables(t *testing.T) {
	// 2×2: yes/yes 20, yes/no 5, no/yes 10, no/no 15. po = 35/50 = 0.7; A says yes 25/50, B 30/50;
	// pe = 0.5·0.6 + 0.5·0.4 = 0.5; kappa = (0.7 − 0.5)/(1 − 0.5) = 0.4.
	f := measure("x", pairs(map[[2]string]int{{"yes", "yes"}: 20, {"yes", "no"}: 5, {"no", "yes"}: 10, {"no", "no"}: 15}), 1)
	if f.N != 50 || !near(*f.Agreement, 0.7) || !near(*f.Kappa, 0.4) {
		t.Errorf("2×2: n %d, agreement %v, kappa %v; want 50, 0.7, 0.4", f.N, *f.Agreement, *f.Kappa)
	}
	if f.Confusion["yes"]["no"] != 5 || f.Confusion["no"]["yes"] != 10 {
		t.Errorf("confusion %v", f.Confusion)
	}
	if lo, hi := f.KappaCI[0], f.KappaCI[1]; !(lo < 0.4 && 0.4 < hi) || lo < -1 || hi > 1 {
		t.Errorf("95%% interval [%v, %v] does not hold the estimate 0.4", lo, hi)
	}
	// 3 labels: x/x 4, y/y 3, z/z 1, x/y 1, y/z 1. po = 0.8; A: x .5 y .4 z .1; B: x .4 y .4 z .2;
	// pe = .2 + .16 + .02 = .38; kappa = .42/.62.
	f = measure("y", pairs(map[[2]string]int{{"x", "x"}: 4, {"y", "y"}: 3, {"z", "z"}: 1, {"x", "y"}: 1, {"y", "z"}: 1}), 1)
	if !near(*f.Agreement, 0.8) || !near(*f.Kappa, 0.42/0.62) {
		t.Errorf("3 labels: agreement %v, kappa %v; want 0.8, %v", *f.Agreement, *f.Kappa, 0.42/0.62)
	}
	if len(f.Labels) != 3 {
		t.Errorf("labels %v", f.Labels)
	}
}

func TestKappaDegenerateCases(t *testing.T) {
	// One category only on both sides: perfect agreement, kappa undefined.
	f := measure("one", pairs(map[[2]string]int{{"a", "a"}: 12}), 1)
	if f.Kappa != nil || f.KappaCI != nil || !near(*f.Agreement, 1) || f.Note == "" {
		t.Errorf("one category: %+v; want agreement 1, no kappa, a note", f)
	}
	// No overlap: nothing to compute.
	f = measure("none", nil, 1)
	if f.N != 0 || f.Agreement != nil || f.Kappa != nil || f.Note == "" {
		t.Errorf("no overlap: %+v", f)
	}
	// One side constant, the other not: agreement is B's share of that label, kappa is 0.
	f = measure("const", pairs(map[[2]string]int{{"a", "a"}: 3, {"a", "b"}: 1}), 1)
	if !near(*f.Agreement, 0.75) || !near(*f.Kappa, 0) {
		t.Errorf("one side constant: agreement %v, kappa %v; want 0.75, 0", *f.Agreement, *f.Kappa)
	}
	// Complete disagreement on two balanced labels: kappa −1.
	f = measure("opposite", pairs(map[[2]string]int{{"a", "b"}: 5, {"b", "a"}: 5}), 1)
	if !near(*f.Agreement, 0) || !near(*f.Kappa, -1) {
		t.Errorf("opposite: agreement %v, kappa %v; want 0, −1", *f.Agreement, *f.Kappa)
	}
}

func TestBootstrapIsRepeatable(t *testing.T) {
	p := pairs(map[[2]string]int{{"yes", "yes"}: 20, {"yes", "no"}: 5, {"no", "yes"}: 10, {"no", "no"}: 15})
	a, b := measure("x", p, 7), measure("x", p, 7)
	if a.KappaCI[0] != b.KappaCI[0] || a.KappaCI[1] != b.KappaCI[1] {
		t.Errorf("same seed, different intervals: %v %v", a.KappaCI, b.KappaCI)
	}
}
