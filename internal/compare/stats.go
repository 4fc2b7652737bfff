// Package compare measures how far two sets of labels for the same records agree: two runs (a
// second model, a second prompt), a run and a person's review sheet, or a run and what the
// registry itself states. Per field it reports the records compared, the share equal, Cohen's
// kappa with a bootstrap 95% interval, the confusion table, and the records where they
// disagree; IDs found on one side only are counted, never dropped silently.
package compare

import (
	"math"
	"math/rand/v2"
	"sort"
)

// Field is the agreement on one category column.
type Field struct {
	Name string `json:"-"`
	// N counts the records labelled on both sides.
	N int `json:"n"`
	// Agreement is the share of them with the same label; nil when N is 0.
	Agreement *float64 `json:"agreement"`
	// Kappa is Cohen's kappa, (po − pe)/(1 − pe); nil when undefined (no records, or both
	// sides gave every record one and the same label, pe = 1).
	Kappa *float64 `json:"kappa"`
	// KappaCI is a bootstrap 95% interval of Kappa (percentiles of BootstrapRounds resamples
	// of the records); nil when Kappa is.
	KappaCI []float64 `json:"kappa_ci"`
	// Confusion counts labels: Confusion[a][b] records labelled a on side A and b on B.
	Confusion map[string]map[string]int `json:"confusion"`
	// Labels are every label seen on either side, sorted.
	Labels []string `json:"labels"`
	// Note says why a figure is missing or what to read into it.
	Note string `json:"note,omitempty"`
}

// BootstrapRounds is how many resamples the kappa interval is drawn from.
const BootstrapRounds = 1000

// pair is one record's labels on the two sides.
type pair struct{ a, b string }

// measure computes a field's figures from its pairs; seed makes the bootstrap repeatable.
func measure(name string, pairs []pair, seed uint64) Field {
	f := Field{Name: name, N: len(pairs), Confusion: map[string]map[string]int{}}
	labels := map[string]bool{}
	for _, p := range pairs {
		labels[p.a], labels[p.b] = true, true
		if f.Confusion[p.a] == nil {
			f.Confusion[p.a] = map[string]int{}
		}
		f.Confusion[p.a][p.b]++
	}
	for l := range labels {
		f.Labels = append(f.Labels, l)
	}
	sort.Strings(f.Labels)
	if len(pairs) == 0 {
		f.Note = "no record is labelled on both sides"
		return f
	}
	po, k, ok := kappa(pairs)
	f.Agreement = &po
	if !ok {
		f.Note = "both sides give every record the same single label: kappa is undefined (agreement is 100%)"
		return f
	}
	f.Kappa = &k
	if lo, hi, ok := bootstrap(pairs, seed); ok {
		f.KappaCI = []float64{lo, hi}
	}
	if top, share := dominant(pairs); share >= 0.8 {
		f.Note = "one label (" + top + ") dominates: kappa understates agreement when the categories are this unbalanced; read it beside the agreement"
	}
	return f
}

// kappa returns the observed agreement and Cohen's kappa of pairs; ok is false when kappa is
// undefined (the chance agreement is 1).
func kappa(pairs []pair) (po, k float64, ok bool) {
	n := float64(len(pairs))
	ca, cb := map[string]float64{}, map[string]float64{}
	same := 0.0
	for _, p := range pairs {
		ca[p.a]++
		cb[p.b]++
		if p.a == p.b {
			same++
		}
	}
	po = same / n
	pe := 0.0
	for l, x := range ca {
		pe += (x / n) * (cb[l] / n)
	}
	if pe >= 1-1e-12 {
		return po, 0, false
	}
	return po, (po - pe) / (1 - pe), true
}

// bootstrap is the 2.5th and 97.5th percentiles of kappa over resamples of pairs (resamples
// where kappa is undefined are left out).
func bootstrap(pairs []pair, seed uint64) (lo, hi float64, ok bool) {
	rng := rand.New(rand.NewPCG(seed, 0x6b617070))
	ks := make([]float64, 0, BootstrapRounds)
	sample := make([]pair, len(pairs))
	for range BootstrapRounds {
		for i := range sample {
			sample[i] = pairs[rng.IntN(len(pairs))]
		}
		if _, k, ok := kappa(sample); ok {
			ks = append(ks, k)
		}
	}
	if len(ks) < BootstrapRounds/2 {
		return 0, 0, false
	}
	sort.Float64s(ks)
	return percentile(ks, 0.025), percentile(ks, 0.975), true
}

// percentile of sorted values, interpolated linearly.
func percentile(sorted []float64, q float64) float64 {
	pos := q * float64(len(sorted)-1)
	i := int(math.Floor(pos))
	if i+1 >= len(sorted) {
		return sorted[len(sorted)-1]
	}
	frac := pos - float64(i)
	return sorted[i] + frac*(sorted[i+1]-sorted[i])
}

// dominant is the most common label over both sides and its share.
func dominant(pairs []pair) (string, float64) {
	c := map[string]int{}
	for _, p := range pairs {
		c[p.a]++
		c[p.b]++
	}
	top, n := "", 0
	for l, x := range c {
		if x > n || (x == n && l < top) {
			top, n = l, x
		}
	}
	return top, float64(n) / float64(2*len(pairs))
}
