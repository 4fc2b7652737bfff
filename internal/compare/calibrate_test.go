package compare

import (
	"bytes"
	"strings"
	"testing"
)

// Calibration bins A's answers by confidence, finds the least threshold that reaches the target,
// and is shown in text and on the page.
func TestCalibrate(t *testing.T) {
	a := &Labels{Fields: []string{"f"}, Values: map[string]map[string]string{}}
	b := &Labels{Fields: []string{"f"}, Values: map[string]map[string]string{}}
	conf := map[string]map[string]float64{}
	add := func(id string, c float64, same bool) {
		a.Order = append(a.Order, id)
		a.Values[id] = map[string]string{"f": "x"}
		b.Values[id] = map[string]string{"f": map[bool]string{true: "x", false: "y"}[same]}
		conf[id] = map[string]float64{"f": c}
	}
	for i := 0; i < 10; i++ {
		add("hi"+string(rune('a'+i)), 1, true)
	}
	for i := 0; i < 10; i++ {
		add("mid"+string(rune('a'+i)), 0.667, i < 6)
	}
	rels := Calibrate(a, b, conf, 0.95)
	if len(rels) != 1 {
		t.Fatalf("%+v", rels)
	}
	r := rels[0]
	if r.Threshold == nil || *r.Threshold != 1 || r.Coverage != 0.5 {
		t.Errorf("threshold %v coverage %v; want 1 and 0.5", r.Threshold, r.Coverage)
	}
	if r.Bands[1].Records != 10 || r.Bands[1].Accuracy != 0.6 || r.Bands[3].Records != 10 || r.Bands[3].Accuracy != 1 {
		t.Errorf("bands %+v", r.Bands)
	}
	var txt bytes.Buffer
	PrintReliability(&txt, rels)
	if !strings.Contains(txt.String(), "confidence >= 1.000 reach 95.0% accuracy (50.0% of the records)") {
		t.Errorf("text:\n%s", txt.String())
	}
	rep := &Report{Fields: map[string]Field{}, Reliability: rels}
	var page bytes.Buffer
	if err := rep.HTML(&page); err != nil || !strings.Contains(page.String(), "Reliability of A") || !strings.Contains(page.String(), "reaches 95.0% accuracy on 50.0%") {
		t.Errorf("page: %v\n%s", err, page.String()[max(0, strings.Index(page.String(), "Reliab")-20):][:min(600, page.Len())])
	}
}
