package compare

import (
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
)

// Band is one confidence band of a reliability table: of A's answers with a confidence in
// [From, To), how many B (a reviewer) confirmed.
type Band struct {
	From     float64 `json:"from"`
	To       float64 `json:"to"`
	Records  int     `json:"records"`
	Matched  int     `json:"matched"`
	Accuracy float64 `json:"accuracy"`
}

// Reliability is one field's calibration: accuracy by confidence band, and the least confidence
// whose answers reach the target accuracy, with the share of the records at or above it.
type Reliability struct {
	Field     string   `json:"field"`
	Bands     []Band   `json:"bands"`
	Target    float64  `json:"target"`
	Threshold *float64 `json:"threshold"`
	Coverage  float64  `json:"coverage"`
}

// bandEdges are the reliability table's bands.
var bandEdges = []float64{0, 0.5, 0.7, 0.9, 1.0000001}

// Calibrate measures, per field, how often A's answers match B's by A's confidence (conf: ID →
// field → confidence), and the confidence threshold that reaches target.
func Calibrate(a, b *Labels, conf map[string]map[string]float64, target float64) []Reliability {
	var out []Reliability
	for _, f := range a.Fields {
		if !slices.Contains(b.Fields, f) {
			continue
		}
		type obs struct {
			c  float64
			ok bool
		}
		var all []obs
		for _, id := range a.Order {
			c, ok := conf[id][f]
			va, vb := a.Values[id][f], b.Values[id][f]
			if !ok || vb == "" || va == "" {
				continue
			}
			all = append(all, obs{c, va == vb})
		}
		if len(all) == 0 {
			continue
		}
		rel := Reliability{Field: f, Target: target}
		for i := 0; i+1 < len(bandEdges); i++ {
			band := Band{From: bandEdges[i], To: min(bandEdges[i+1], 1)}
			for _, o := range all {
				if o.c >= bandEdges[i] && o.c < bandEdges[i+1] {
					band.Records++
					if o.ok {
						band.Matched++
					}
				}
			}
			if band.Records > 0 {
				band.Accuracy = float64(band.Matched) / float64(band.Records)
			}
			rel.Bands = append(rel.Bands, band)
		}
		slices.SortFunc(all, func(x, y obs) int {
			switch {
			case x.c < y.c:
				return -1
			case x.c > y.c:
				return 1
			}
			return 0
		})
		// The least threshold whose answers at or above it reach the target.
		for i := 0; i < len(all); i++ {
			if i > 0 && all[i].c == all[i-1].c {
				continue
			}
			matched := 0
			for _, o := range all[i:] {
				if o.ok {
					matched++
				}
			}
			if float64(matched)/float64(len(all)-i) >= target {
				t := all[i].c
				rel.Threshold, rel.Coverage = &t, float64(len(all)-i)/float64(len(all))
				break
			}
		}
		out = append(out, rel)
	}
	return out
}

// PrintReliability writes the reliability tables for a person.
func PrintReliability(w io.Writer, rels []Reliability) {
	if len(rels) == 0 {
		return
	}
	fmt.Fprintln(w, "\nreliability of A's confidence against B:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "field\tconfidence\trecords\tB agrees\t")
	for _, r := range rels {
		for _, b := range r.Bands {
			if b.Records == 0 {
				continue
			}
			fmt.Fprintf(tw, "%s\t%.1f-%.1f\t%d\t%s\t\n", r.Field, b.From, b.To, b.Records, share(b.Accuracy))
		}
	}
	tw.Flush()
	for _, r := range rels {
		if r.Threshold == nil {
			fmt.Fprintf(w, "  %s: no confidence threshold reaches %s accuracy\n", r.Field, share(r.Target))
			continue
		}
		fmt.Fprintf(w, "  %s: answers with confidence >= %.3f reach %s accuracy (%s of the records)\n", r.Field, *r.Threshold, share(r.Target), share(r.Coverage))
	}
}

func share(v float64) string { return fmt.Sprintf("%.1f%%", 100*v) }
