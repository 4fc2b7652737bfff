package offline

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/sample_answers.jsonl from the current rules")

// goldenPath holds the offline answers to the 100 bundled records, one JSON line per record:
// reviewed by hand when written, so any change of rules or tie-breaks shows up here as a diff
// to review (go test ./internal/offline -run Golden -update rewrites it).
var goldenPath = filepath.Join("testdata", "sample_answers.jsonl")

func TestGoldenSampleAnswers(t *testing.T) {
	var got bytes.Buffer
	for _, r := range readSample(t) {
		ans := categorize(t, r.id, r.data)
		ans["id"] = r.id
		line, err := json.Marshal(ans) // map keys are sorted: stable lines
		if err != nil {
			t.Fatal(err)
		}
		got.Write(line)
		got.WriteByte('\n')
	}
	if *update {
		if err := os.MkdirAll(filepath.Dir(goldenPath), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goldenPath, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatalf("%v (write it with -update, then review it)", err)
	}
	g, w := strings.Split(got.String(), "\n"), strings.Split(string(want), "\n")
	if len(g) != len(w) {
		t.Fatalf("%d answers, golden file has %d", len(g), len(w))
	}
	diffs := 0
	for i := range g {
		if g[i] != w[i] {
			diffs++
			if diffs <= 5 {
				t.Errorf("record %d changed:\n got %s\nwant %s", i+1, g[i], w[i])
			}
		}
	}
	if diffs > 0 {
		t.Errorf("%d of %d answers differ from %s; review them, then rerun with -update", diffs, len(g)-1, goldenPath)
	}
}
