package results

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStreamOnceAcrossReopensAndTornLines(t *testing.T) {
	layout := Layout{IDColumn: "nct_id", Columns: []string{"area"}}
	path := filepath.Join(t.TempDir(), "results.jsonl")
	row := func(id, area string) []string {
		cells, err := layout.Encode(Row{ID: id, Values: []string{area}, Model: "m", Attempts: 1, CostKnown: true})
		if err != nil {
			t.Fatal(err)
		}
		return cells
	}
	var tee bytes.Buffer
	s, err := OpenStream(path, layout, &tee, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range [][]string{row("NCT1", "oncology"), row("NCT2", "cardio\"vascular"), row("NCT1", "again")} {
		if err := s.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	if n := strings.Count(tee.String(), "\n"); n != 2 {
		t.Errorf("tee got %d lines; want 2 (NCT1 once)", n)
	}
	if !strings.HasPrefix(tee.String(), `{"nct_id":"NCT1","area":"oncology","model":"m"`) {
		t.Errorf("keys not in the final_results.csv order, ID first: %s", tee.String())
	}
	// A kill mid-write leaves a torn line: it is cut, and its ID can come again.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"nct_id":"NCT3","ar`)
	f.Close()
	s, err = OpenStream(path, layout, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range [][]string{row("NCT2", "x"), row("NCT3", "neurology")} {
		if err := s.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 3 || !strings.Contains(lines[2], `"NCT3","area":"neurology"`) {
		t.Errorf("after reopening: %q; want NCT1, NCT2 and NCT3 once each", lines)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, os.ErrClosed }

func TestStreamGoesOnWhenTheTeeFails(t *testing.T) {
	layout := Layout{IDColumn: "id", Columns: []string{"a"}}
	told := 0
	s, err := OpenStream(filepath.Join(t.TempDir(), "r.jsonl"), layout, failingWriter{}, func(error) { told++ })
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, id := range []string{"1", "2"} {
		cells, _ := layout.Encode(Row{ID: id, Values: []string{"v"}})
		if err := s.Add(cells); err != nil {
			t.Errorf("Add with a failed tee: %v; the file must go on", err)
		}
	}
	if told != 1 {
		t.Errorf("told %d times of the tee failing; want once", told)
	}
}

func TestIndexThenReadRowsAtTheirOffsets(t *testing.T) {
	layout := Layout{IDColumn: "id", Columns: []string{"a"}}
	path := filepath.Join(t.TempDir(), "w.csv")
	w, err := OpenWriter(path, layout.Header())
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{"1", "two\r\nlines", "3,\"q\"", "4"}
	for _, id := range ids {
		cells, _ := layout.Encode(Row{ID: id, Values: []string{"v" + id}})
		if err := w.Append(cells); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	at := map[string]int64{}
	if _, _, err := Index(path, func(row []string, off int64) error { at[row[0]] = off; return nil }); err != nil {
		t.Fatal(err)
	}
	rr, err := OpenRows(path)
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Close()
	// Out of order, in order, and the same row twice.
	for _, id := range []string{"4", "1", "two\r\nlines", "3,\"q\"", "4", "4"} {
		row, err := rr.At(at[id])
		if err != nil || row[0] != id || row[1] != "v"+id {
			t.Errorf("At(%d) = %q, %v; want the row of %q", at[id], row, err, id)
		}
	}
}

// A file of the version before the agent's columns (cached, but no cached_tokens, turns or
// tool_calls) is read with their defaults.
func TestResultsFileBeforeTheAgentColumns(t *testing.T) {
	layout := Layout{IDColumn: "id", Columns: []string{"a"}}
	path := filepath.Join(t.TempDir(), "worker_0_results.csv")
	os.WriteFile(path, []byte("id,a,model,input_tokens,output_tokens,cost_usd,attempts,latency_ms,worker,cached\n"+
		"1,x,m,10,2,0.001000,1,100,0,true\n"), 0o644)
	var got []Row
	if _, err := layout.ReadRows(path, func(r Row) error { got = append(got, r); return nil }); err != nil {
		t.Fatalf("ReadRows: %v", err)
	}
	if len(got) != 1 || !got[0].Cached || got[0].Turns != 0 || got[0].ToolCalls != "" || got[0].CachedTokens != 0 {
		t.Errorf("rows read as %+v", got)
	}
	if IsLegacy([]string{"id", "a", "model"}, layout.Header()) {
		t.Error("a header missing more than the added columns is taken for an earlier version")
	}
}

func TestLegacyResultsFileIsReadAndUpgraded(t *testing.T) {
	layout := Layout{IDColumn: "id", Columns: []string{"a"}}
	path := filepath.Join(t.TempDir(), "worker_0_results.csv")
	// What an earlier version wrote: no cached column, and a torn last line.
	os.WriteFile(path, []byte("id,a,model,input_tokens,output_tokens,cost_usd,attempts,latency_ms,worker\n"+
		"1,x,m,10,2,0.001000,1,100,0\n2,y,m,10,2,0.001000,1,90,0\n3,z,m,1"), 0o644)
	var got []Row
	if _, err := layout.ReadRows(path, func(r Row) error { got = append(got, r); return nil }); err != nil {
		t.Fatalf("ReadRows of a legacy file: %v", err)
	}
	if len(got) != 2 || got[1].ID != "2" || got[1].Cached || got[1].LatencyMS != 90 {
		t.Errorf("legacy rows read as %+v", got)
	}
	// A worker that appends upgrades the file first: the header gains the column, rows keep
	// their values, the torn line goes.
	w, err := OpenWriter(path, layout.Header())
	if err != nil {
		t.Fatalf("OpenWriter on a legacy file: %v", err)
	}
	cells, _ := layout.Encode(Row{ID: "3", Values: []string{"z"}, Cached: true})
	if err := w.Append(cells); err != nil {
		t.Fatal(err)
	}
	w.Close()
	data, _ := os.ReadFile(path)
	want := "id,a,model,input_tokens,output_tokens,cost_usd,attempts,latency_ms,worker,cached,cached_tokens,turns,tool_calls,source,decided_by,escalated,service_tier\n" +
		"1,x,m,10,2,0.001000,1,100,0,false,0,0,,,,,\n2,y,m,10,2,0.001000,1,90,0,false,0,0,,,,,\n3,z,,0,0,,0,0,0,true,0,0,,,,,\n"
	if string(data) != want {
		t.Errorf("upgraded file:\n%s\nwant:\n%s", data, want)
	}
}

// A final_results.csv written by an earlier version (fewer bookkeeping columns) is read by its
// own header, the columns added since taking their defaults.
func TestReadFileOfAnEarlierVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "final_results.csv")
	os.WriteFile(path, []byte("id,a,model,input_tokens,output_tokens,cost_usd,attempts,latency_ms,worker,cached\n1,x,m,10,2,0.001000,1,100,0,true\n"), 0o644)
	var got []Row
	if _, err := ReadFile(path, func(l Layout, r Row) error {
		if len(l.Columns) != 1 || l.Columns[0] != "a" {
			t.Errorf("layout %+v", l)
		}
		got = append(got, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !got[0].Cached || got[0].Values[0] != "x" {
		t.Errorf("rows %+v", got)
	}
}

func TestStreamWritesNumbersAsJSONNumbers(t *testing.T) {
	dir := t.TempDir()
	l := Layout{IDColumn: "nct_id", Columns: []string{"phase", "phase_confidence"}}
	s, err := OpenStream(filepath.Join(dir, "results.jsonl"), l, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	known, _ := l.Encode(Row{ID: "NCT1", Values: []string{"PHASE2", "0.667"}, Model: "m", InputTokens: 2300, OutputTokens: 40,
		CostUSD: 0.000123, CostKnown: true, Attempts: 1, LatencyMS: 900, Worker: 2, CachedTokens: 1024, ServiceTier: "flex"})
	unknown, _ := l.Encode(Row{ID: "NCT2", Values: []string{"12", "x"}, Model: "m", Attempts: 1, Cached: true})
	for _, row := range [][]string{known, unknown} {
		if err := s.Add(row); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "results.jsonl"))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var first, second map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &second); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"nct_id": "NCT1", "phase": "PHASE2", "phase_confidence": 0.667, "input_tokens": 2300.0,
		"cached_tokens": 1024.0, "cost_usd": 0.000123, "attempts": 1.0, "worker": 2.0, "cached": false, "service_tier": "flex"} {
		if first[k] != want {
			t.Errorf("%s = %#v (%T), want %#v", k, first[k], first[k], want)
		}
	}
	// A schema cell that looks like a number stays a string; a cost not known is null, never 0;
	// a confidence cell that is not a number stays a string.
	if second["phase"] != "12" || second["cost_usd"] != nil || second["phase_confidence"] != "x" || second["cached"] != true {
		t.Errorf("second line = %v", second)
	}
	if _, ok := second["cost_usd"]; !ok {
		t.Error("cost_usd is missing, want null")
	}
	// Reopening reads the IDs back from the typed lines: no record streams twice.
	s, err = OpenStream(filepath.Join(dir, "results.jsonl"), l, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Len() != 2 {
		t.Errorf("reopened stream holds %d IDs, want 2", s.Len())
	}
}

func TestIsJSONNumber(t *testing.T) {
	for s, want := range map[string]bool{"0": true, "12": true, "-0.5": true, "1e3": true, "2.5E-7": true, "0.000123": true,
		"": false, "01": false, "+1": false, "0x1F": false, "Inf": false, "NaN": false, "1.": false, ".5": false, "1e": false, "1 ": false} {
		if got := isJSONNumber(s); got != want {
			t.Errorf("isJSONNumber(%q) = %v, want %v", s, got, want)
		}
	}
}
