package compare

import (
	"math"
	"math/rand/v2"
	"sort"
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

// The interval is a 95% interval: over many samples drawn from two raters whose agreement is
// known, it holds the true kappa about 95 times in 100 (a 50% interval reported as 95% fails).
func TestKappaIntervalCoversTheTrueKappa(t *testing.T) {
	// The joint distribution of the two raters' labels over three categories.
	joint := map[[2]string]float64{
		{"a", "a"}: 0.30, {"a", "b"}: 0.05, {"a", "c"}: 0.03,
		{"b", "a"}: 0.06, {"b", "b"}: 0.25, {"b", "c"}: 0.04,
		{"c", "a"}: 0.02, {"c", "b"}: 0.05, {"c", "c"}: 0.20,
	}
	var po float64
	ma, mb := map[string]float64{}, map[string]float64{}
	var cells [][2]string
	var cum []float64
	var sum float64
	for k, p := range joint {
		if k[0] == k[1] {
			po += p
		}
		ma[k[0]] += p
		mb[k[1]] += p
		sum += p
		cells = append(cells, k)
		cum = append(cum, sum)
	}
	var pe float64
	for l, p := range ma {
		pe += p * mb[l]
	}
	truth := (po - pe) / (1 - pe)
	rng := rand.New(rand.NewPCG(11, 13))
	const trials, n = 120, 100
	covered := 0
	for trial := range trials {
		sample := make([]pair, n)
		for i := range sample {
			u := rng.Float64() * sum
			j := sort.SearchFloat64s(cum, u)
			if j >= len(cells) {
				j = len(cells) - 1
			}
			sample[i] = pair{cells[j][0], cells[j][1]}
		}
		lo, hi, ok := bootstrap(sample, uint64(trial)+1)
		if ok && lo <= truth && truth <= hi {
			covered++
		}
	}
	if share := float64(covered) / trials; share < 0.88 || share > 0.995 {
		t.Errorf("the 95%% interval held the true kappa %.3f in %d of %d samples (%.0f%%)", truth, covered, trials, 100*share)
	}
}
