package input

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/trialcat/trialcat/internal/exitcode"
	"github.com/trialcat/trialcat/internal/record"
)

// trials returns the lines of the bundled sample of real records.
func trials(tb testing.TB) [][]byte {
	tb.Helper()
	b, err := os.ReadFile("../../testdata/trials.jsonl")
	if err != nil {
		tb.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	if len(lines) != 100 {
		tb.Fatalf("testdata/trials.jsonl has %d lines, want 100", len(lines))
	}
	return lines
}

// idOf is the ID the record package finds in a record.
func idOf(tb testing.TB, data []byte, field string) string {
	tb.Helper()
	m, err := record.Decode(data)
	if err != nil {
		tb.Fatal(err)
	}
	return record.IDOf(m, field)
}

// writeFile writes content to a new file in a temporary folder and returns its path.
func writeFile(tb testing.TB, name, content string) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

// readAll reads every record of path with a Reader.
func readAll(tb testing.TB, path string, opts Options) (Format, []record.Record, error) {
	tb.Helper()
	r, err := Open(path, opts)
	if err != nil {
		return "", nil, err
	}
	defer r.Close()
	var recs []record.Record
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			return r.Format(), recs, nil
		}
		if err != nil {
			return r.Format(), recs, err
		}
		recs = append(recs, rec)
	}
}

func indent(tb testing.TB, b []byte) string {
	tb.Helper()
	var out bytes.Buffer
	if err := json.Indent(&out, b, "  ", "  "); err != nil {
		tb.Fatal(err)
	}
	return out.String()
}

// csvOf writes rows as CSV.
func csvOf(tb testing.TB, rows [][]string) string {
	tb.Helper()
	var b strings.Builder
	w := csv.NewWriter(&b)
	if err := w.WriteAll(rows); err != nil {
		tb.Fatal(err)
	}
	return b.String()
}

type want struct {
	id   string
	data string // compact JSON
}

func TestFormats(t *testing.T) {
	lines := trials(t)
	var jsonWant []want
	for _, l := range lines {
		var c bytes.Buffer
		if err := json.Compact(&c, l); err != nil {
			t.Fatal(err)
		}
		jsonWant = append(jsonWant, want{idOf(t, l, ""), c.String()})
	}

	var pretty []string
	for _, l := range lines {
		pretty = append(pretty, indent(t, l))
	}
	array := "[\n  " + strings.Join(pretty, ",\n  ") + "\n]\n"
	page := `{"totalCount": 100, "studies": [` + string(bytes.Join(lines, []byte(",\n"))) + `], "nextPageToken": "NF0g5JGBlPMuwQY"}`
	jsonl := string(bytes.Join(lines, []byte("\n\n"))) // blank lines between, no final newline

	// A small CSV from real fields, with commas, quotes and newlines inside fields.
	rows := [][]string{{"nct_id", "brief_title", "conditions"}}
	var csvWant []want
	for _, l := range lines[:5] {
		m, err := record.Decode(l)
		if err != nil {
			t.Fatal(err)
		}
		id := record.IDOf(m, "")
		title, _ := record.Lookup(m, "protocolSection.identificationModule.briefTitle")
		conds, _ := record.Lookup(m, "protocolSection.conditionsModule.conditions")
		var cs []string
		for _, c := range conds.([]any) {
			cs = append(cs, c.(string))
		}
		row := []string{id, title.(string) + ` "quoted"`, strings.Join(cs, ",\n")}
		rows = append(rows, row)
		var data bytes.Buffer
		enc := json.NewEncoder(&data)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(struct {
			NCTID      string `json:"nct_id"`
			BriefTitle string `json:"brief_title"`
			Conditions string `json:"conditions"`
		}{row[0], row[1], row[2]}); err != nil {
			t.Fatal(err)
		}
		csvWant = append(csvWant, want{id, strings.TrimSpace(data.String())})
	}
	csvText := csvOf(t, rows)

	tests := []struct {
		name    string
		content string
		format  Format
		want    []want
	}{
		{"json array", array, FormatJSON, jsonWant},
		{"json array with BOM and CRLF", bomUTF8 + "[\r\n" + strings.ReplaceAll(strings.Join(pretty[:10], ",\n"), "\n", "\r\n") + "]", FormatJSON, jsonWant[:10]},
		{"studies page", page, FormatCTGov, jsonWant},
		{"studies page, studies key last", `{"nextPageToken": "x", "other": {"studies": []}, "studies": [` + string(lines[0]) + `]}`, FormatCTGov, jsonWant[:1]},
		{"json lines", jsonl, FormatJSONL, jsonWant},
		{"json lines with CRLF and BOM", bomUTF8 + string(bytes.Join(lines[:10], []byte("\r\n"))) + "\r\n", FormatJSONL, jsonWant[:10]},
		{"single json line", string(lines[0]), FormatJSONL, jsonWant[:1]},
		{"json lines, first record has a studies field that is not an array",
			`{"nctId": "NCT1", "studies": "none"}` + "\n" + `{"nctId": "NCT2"}`, FormatJSONL,
			[]want{{"NCT1", `{"nctId":"NCT1","studies":"none"}`}, {"NCT2", `{"nctId":"NCT2"}`}}},
		{"csv", csvText, FormatCSV, csvWant},
		{"csv with BOM and CRLF", bomUTF8 + strings.ReplaceAll(csvOf(t, rows[:2]), "\n", "\r\n"), FormatCSV, csvWant[:1]},
		{"csv with quoted header", "\"nct_id\",\"n\"\nNCT9,1\n", FormatCSV, []want{{"NCT9", `{"nct_id":"NCT9","n":"1"}`}}},
		{"numeric IDs are spelled as in the input", `[{"nct_id": 12345}, {"nct_id": 1.50}, {"nct_id": -2e3}]`, FormatJSON,
			[]want{{"12345", `{"nct_id":12345}`}, {"1.50", `{"nct_id":1.50}`}, {"-2e3", `{"nct_id":-2e3}`}}},
		{"ID with surrounding spaces and escapes", `[{"nctId": " NCT\u0031 "}]`, FormatJSON, []want{{"NCT1", `{"nctId":" NCT\u0031 "}`}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, "input.data", tt.content)
			st, err := Scan(context.Background(), path, Options{})
			if err != nil {
				t.Fatalf("Scan: %v", err)
			}
			sum := sha256.Sum256([]byte(tt.content))
			if st.Format != tt.format || st.Records != int64(len(tt.want)) || st.SHA256 != hex.EncodeToString(sum[:]) || len(st.Dropped) != 0 {
				t.Errorf("Scan = %+v, want format %s, %d records, sha256 %x", st, tt.format, len(tt.want), sum)
			}
			format, recs, err := readAll(t, path, Options{})
			if err != nil {
				t.Fatalf("Next: %v", err)
			}
			if format != tt.format {
				t.Errorf("Format() = %s, want %s", format, tt.format)
			}
			if len(recs) != len(tt.want) {
				t.Fatalf("read %d records, want %d", len(recs), len(tt.want))
			}
			for i, rec := range recs {
				if rec.Index != int64(i) || rec.ID != tt.want[i].id || string(rec.Data) != tt.want[i].data {
					t.Errorf("record %d = {%d %q %.80s}, want {%d %q %.80s}", i, rec.Index, rec.ID, rec.Data, i, tt.want[i].id, tt.want[i].data)
				}
			}
		})
	}
}

func TestIDField(t *testing.T) {
	lines := trials(t)
	path := writeFile(t, "in.jsonl", string(bytes.Join(lines[:10], []byte("\n"))))
	for _, field := range []string{
		"protocolSection.identificationModule.orgStudyIdInfo.id",
		"protocolSection.identificationModule.briefTitle",
		"protocolSection.conditionsModule.conditions.0",
	} {
		t.Run(field, func(t *testing.T) {
			_, recs, err := readAll(t, path, Options{IDField: field})
			if err != nil {
				t.Fatal(err)
			}
			for i, rec := range recs {
				if want := idOf(t, lines[i], field); rec.ID != want || want == "" {
					t.Errorf("record %d: ID %q, want %q", i, rec.ID, want)
				}
			}
		})
	}
}

func TestDedupe(t *testing.T) {
	path := writeFile(t, "in.jsonl", `{"nct_id":"A","n":0}
{"nct_id":"B","n":1}
{"nct_id":"A","n":2}
{"nct_id":"C","n":3}
{"nct_id":"B","n":4}
`)
	st, err := Scan(context.Background(), path, Options{Dedupe: true})
	if err != nil {
		t.Fatal(err)
	}
	wantDropped := []Duplicate{{ID: "A", Index: 2, FirstIndex: 0}, {ID: "B", Index: 4, FirstIndex: 1}}
	if st.Records != 3 || fmt.Sprint(st.Dropped) != fmt.Sprint(wantDropped) {
		t.Errorf("Scan = %d records, dropped %v; want 3, %v", st.Records, st.Dropped, wantDropped)
	}

	_, recs, err := readAll(t, path, Options{Dedupe: true})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		got = append(got, fmt.Sprintf("%d:%s:%s", r.Index, r.ID, r.Data))
	}
	want := []string{`0:A:{"nct_id":"A","n":0}`, `1:B:{"nct_id":"B","n":1}`, `2:C:{"nct_id":"C","n":3}`}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Next with Dedupe = %v, want %v", got, want)
	}

	// Without Dedupe, Scan refuses; Next (after a Scan has passed) does not check.
	_, err = Scan(context.Background(), path, Options{})
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, exitcode.ErrUsage) {
		t.Fatalf("Scan without Dedupe = %v, want an *Error", err)
	}
	if e.Line != 3 || e.Column != 1 || e.Index != 2 || e.ID != "A" ||
		!strings.Contains(e.Msg, "2 records repeat an earlier ID: A (records 0 and 2), B (records 1 and 4)") ||
		!strings.Contains(e.Hint, "--dedupe keeps the first") {
		t.Errorf("Scan without Dedupe = %#v", e)
	}
	if _, recs, err := readAll(t, path, Options{}); err != nil || len(recs) != 5 {
		t.Errorf("Next without Dedupe read %d records, err %v; want 5, nil", len(recs), err)
	}
}

func TestDuplicatesListed(t *testing.T) {
	var b strings.Builder
	for i := range 15 {
		fmt.Fprintf(&b, "{\"nctId\": \"NCT%d\"}\n", i%2) // 13 repeats
	}
	_, err := Scan(context.Background(), writeFile(t, "in.jsonl", b.String()), Options{})
	msg := fmt.Sprint(err)
	for _, s := range []string{"13 records repeat an earlier ID", "NCT0 (records 0 and 2)", "NCT0 (records 0 and 10)", "NCT1 (records 1 and 11)", "and 3 more"} {
		if !strings.Contains(msg, s) {
			t.Errorf("error %q does not contain %q", msg, s)
		}
	}
	if strings.Contains(msg, "records 0 and 12") {
		t.Errorf("error %q lists more than 10 duplicates", msg)
	}
}

func TestLongLine(t *testing.T) {
	long := strings.Repeat("é long text ", 200_000) // 2.6 MB
	content := `{"nctId":"NCT1","text":"` + long + "\"}\n" + `{"nctId":"NCT2"}` + "\n"
	path := writeFile(t, "long.jsonl", content)
	if st, err := Scan(context.Background(), path, Options{}); err != nil || st.Records != 2 {
		t.Fatalf("Scan = %+v, %v", st, err)
	}
	_, recs, err := readAll(t, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].ID != "NCT1" || recs[1].ID != "NCT2" || len(recs[0].Data) != len(content)-len(`{"nctId":"NCT2"}`)-2 {
		t.Errorf("read %d records", len(recs))
	}
}

func TestScanCancelled(t *testing.T) {
	path := writeFile(t, "in.jsonl", string(bytes.Join(trials(t), []byte("\n"))))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Scan(ctx, path, Options{})
	if !errors.Is(err, context.Canceled) || errors.Is(err, exitcode.ErrUsage) {
		t.Errorf("Scan with a cancelled context = %v, want context.Canceled", err)
	}
}

func TestReaderClosed(t *testing.T) {
	r, err := Open(writeFile(t, "in.jsonl", `{"nctId":"NCT1"}`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err == nil || errors.Is(err, io.EOF) {
		t.Errorf("Next after Close = %v, want an error", err)
	}
}

// Scan keeps the records a Reader would return (after --dedupe, for every format) when the
// file is no larger than Keep, and none when it is.
func TestScanKeepsWhatAReaderReturns(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"a.jsonl": `{"nct_id":"1","x":[1, 2]}` + "\n" + `{"nct_id":"2"}` + "\n" + `{"nct_id":"1","dup":true}` + "\n" + `{"nct_id":"3"}` + "\n",
		"b.json":  `[{"nct_id":"1"}, {"nct_id":"2","t":"é"}]`,
		"c.csv":   "nct_id,title\n1,a\n2,\"b, c\"\n",
	} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		opts := Options{Dedupe: true}
		r, err := Open(path, opts)
		if err != nil {
			t.Fatal(err)
		}
		var want []record.Record
		for {
			rec, err := r.Next()
			if err != nil {
				break
			}
			want = append(want, rec)
		}
		r.Close()
		opts.Keep = int64(len(content))
		st, err := Scan(context.Background(), path, opts)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(st.Kept, want) {
			t.Errorf("%s: kept %v; a reader returns %v", name, st.Kept, want)
		}
		st.Free()
		opts.Keep = int64(len(content)) - 1
		if st, err = Scan(context.Background(), path, opts); err != nil || st.Kept != nil {
			t.Errorf("%s: kept %d records of a file over Keep (%v)", name, len(st.Kept), err)
		}
	}
}
