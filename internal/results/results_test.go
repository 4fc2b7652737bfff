package results

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/trialcat/trialcat/internal/exitcode"
)

var testHeader = []string{"nct_id", "category", "model", "worker"}

// writeFile creates a file with the given content in a fresh directory and returns its path.
func writeFile(tb testing.TB, content string) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "worker_1_results.csv")
	if content != "" {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return path
}

// readAll reads a file with Read and returns its rows.
func readAll(tb testing.TB, path string) (header []string, rows [][]string, torn bool) {
	tb.Helper()
	header, torn, err := Read(path, func(row []string) error {
		rows = append(rows, row)
		return nil
	})
	if err != nil {
		tb.Fatalf("Read: %v", err)
	}
	return header, rows, torn
}

// appendRows opens path with testHeader, appends rows and closes it.
func appendRows(tb testing.TB, path string, rows ...[]string) {
	tb.Helper()
	w, err := OpenWriter(path, testHeader)
	if err != nil {
		tb.Fatalf("OpenWriter: %v", err)
	}
	for _, r := range rows {
		if err := w.Append(r); err != nil {
			tb.Fatalf("Append: %v", err)
		}
	}
	if err := w.Close(); err != nil {
		tb.Fatalf("Close: %v", err)
	}
}

func TestWriterCreatesAndAppends(t *testing.T) {
	path := writeFile(t, "")
	appendRows(t, path, []string{"NCT1", "a", "m", "1"})
	appendRows(t, path, []string{"NCT2", "b", "m", "1"}) // reopen appends, header written once
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "nct_id,category,model,worker\nNCT1,a,m,1\nNCT2,b,m,1\n"
	if string(got) != want {
		t.Errorf("file = %q, want %q", got, want)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm&0o600 != 0o600 || perm&0o133 != 0 {
		t.Errorf("mode = %v, want 0644 (less umask)", perm)
	}
}

func TestAppendIsVisibleBeforeClose(t *testing.T) {
	// A crash after Append must not lose the row: nothing may stay buffered in the process.
	path := writeFile(t, "")
	w, err := OpenWriter(path, testHeader)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Append([]string{"NCT1", "a", "m", "1"}); err != nil {
		t.Fatal(err)
	}
	_, rows, torn := readAll(t, path)
	if len(rows) != 1 || torn {
		t.Fatalf("rows = %q, torn = %v; want the appended row", rows, torn)
	}
}

func TestAppendWrongFieldCount(t *testing.T) {
	w, err := OpenWriter(writeFile(t, ""), testHeader)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Append([]string{"NCT1"}); err == nil {
		t.Fatal("Append of a short row: want an error")
	}
}

func TestAppendAfterClose(t *testing.T) {
	w, err := OpenWriter(writeFile(t, ""), testHeader)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := w.Append([]string{"a", "b", "c", "d"}); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Append after Close = %v, want os.ErrClosed", err)
	}
}

func TestOpenWriterExisting(t *testing.T) {
	const head = "nct_id,category,model,worker\n"
	tests := []struct {
		name      string
		existing  string
		wantUsage bool   // OpenWriter must fail with exitcode.ErrUsage
		wantErr   bool   // OpenWriter must fail (any error)
		want      string // file content after appending row NCT9
	}{
		{name: "header only", existing: head, want: head + "NCT9,z,m,1\n"},
		{name: "complete rows kept", existing: head + "NCT1,a,m,1\n", want: head + "NCT1,a,m,1\nNCT9,z,m,1\n"},
		{name: "torn line without newline", existing: head + "NCT1,a,m,1\nNCT2,b", want: head + "NCT1,a,m,1\nNCT9,z,m,1\n"},
		{name: "torn inside quoted multi-line field", existing: head + "NCT1,a,m,1\nNCT2,\"line one\nline", want: head + "NCT1,a,m,1\nNCT9,z,m,1\n"},
		{name: "torn after newline inside quotes", existing: head + "NCT1,a,m,1\nNCT2,\"line one\n", want: head + "NCT1,a,m,1\nNCT9,z,m,1\n"},
		{name: "torn header", existing: "nct_id,categ", want: head + "NCT9,z,m,1\n"},
		{name: "different header", existing: "id,category,model,worker\nX,a,m,1\n", wantUsage: true},
		{name: "different column count", existing: "nct_id,category\n", wantUsage: true},
		{name: "foreign file without newline", existing: "hello world", wantUsage: true},
		{name: "damaged middle line", existing: head + "NCT1,a\nNCT2,b,m,1\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, tt.existing)
			w, err := OpenWriter(path, testHeader)
			if tt.wantUsage || tt.wantErr {
				if err == nil {
					w.Close()
					t.Fatal("OpenWriter: want an error")
				}
				if tt.wantUsage && !errors.Is(err, exitcode.ErrUsage) {
					t.Errorf("error %v does not wrap exitcode.ErrUsage", err)
				}
				if !strings.Contains(err.Error(), path) {
					t.Errorf("error %q does not name the file", err)
				}
				if got, _ := os.ReadFile(path); string(got) != tt.existing {
					t.Errorf("a refused file was changed to %q", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("OpenWriter: %v", err)
			}
			if err := w.Append([]string{"NCT9", "z", "m", "1"}); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("file = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRead(t *testing.T) {
	const head = "nct_id,category,model,worker\n"
	tests := []struct {
		name       string
		content    string // "" = missing file
		wantHeader []string
		wantIDs    []string
		wantTorn   bool
		wantErr    string // substring of the error; "" = no error
	}{
		{name: "missing file"},
		{name: "header only", content: head, wantHeader: testHeader},
		{name: "rows", content: head + "NCT1,a,m,1\nNCT2,b,m,1\n", wantHeader: testHeader, wantIDs: []string{"NCT1", "NCT2"}},
		{name: "CRLF line ends", content: "nct_id,category,model,worker\r\nNCT1,a,m,1\r\n", wantHeader: testHeader, wantIDs: []string{"NCT1"}},
		{name: "blank trailing line is not torn", content: head + "NCT1,a,m,1\n\n", wantHeader: testHeader, wantIDs: []string{"NCT1"}},
		{name: "torn: no trailing newline", content: head + "NCT1,a,m,1\nNCT2,b,m,1", wantHeader: testHeader, wantIDs: []string{"NCT1"}, wantTorn: true},
		{name: "torn: short last line", content: head + "NCT1,a,m,1\nNCT2,b\n", wantHeader: testHeader, wantIDs: []string{"NCT1"}, wantTorn: true},
		{name: "torn: open quote", content: head + "NCT1,a,m,1\nNCT2,\"b\nc", wantHeader: testHeader, wantIDs: []string{"NCT1"}, wantTorn: true},
		{name: "torn header", content: "nct_id,cat", wantTorn: true},
		{name: "short middle line", content: head + "NCT1,a\nNCT2,b,m,1\n", wantErr: "line 2 has 2 fields, want 4"},
		{name: "bare quote in middle line", content: head + "NCT1,a\"b,m,1\nNCT2,b,m,1\n", wantErr: "line 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, tt.content)
			var ids []string
			header, torn, err := Read(path, func(row []string) error {
				if len(row) != len(testHeader) {
					t.Errorf("row %q has %d fields", row, len(row))
				}
				ids = append(ids, row[0])
				return nil
			})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), path) {
					t.Fatalf("Read error = %v, want one naming %s and containing %q", err, path, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if !slices.Equal(header, tt.wantHeader) {
				t.Errorf("header = %q, want %q", header, tt.wantHeader)
			}
			if !slices.Equal(ids, tt.wantIDs) {
				t.Errorf("ids = %q, want %q", ids, tt.wantIDs)
			}
			if torn != tt.wantTorn {
				t.Errorf("torn = %v, want %v", torn, tt.wantTorn)
			}
		})
	}
}

func TestReadCallbackErrorStops(t *testing.T) {
	path := writeFile(t, "nct_id,category,model,worker\nNCT1,a,m,1\nNCT2,b,m,1\n")
	errStop := errors.New("stop")
	calls := 0
	_, _, err := Read(path, func(row []string) error {
		calls++
		return errStop
	})
	if !errors.Is(err, errStop) || calls != 1 {
		t.Fatalf("Read = %v after %d calls, want errStop after 1", err, calls)
	}
}

func TestRoundTrip(t *testing.T) {
	rows := [][]string{
		{"NCT1", "multi\nline\r\nvalue", "m", "1"},
		{"ID\r\nwith CRLF", "bare\rCR", "\r\n", "1"},
		{"NCT2", `she said "yes", then "no"`, "m", "1"},
		{"NCT3", "", "m,with,commas", "1"},
		{"NCT4", "\"leading quote", "trailing quote\"", " spaced "},
		{"NCT5", "=SUM(A1)", "ünïcødé ✓", "1"},
	}
	path := writeFile(t, "")
	appendRows(t, path, rows...)
	// A crash mid-row leaves a torn row; reading must ignore it and reopening must remove it.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("NCT6,\"half a\nmulti-line"); err != nil {
		t.Fatal(err)
	}
	f.Close()

	header, got, torn := readAll(t, path)
	if !slices.Equal(header, testHeader) || !torn {
		t.Fatalf("header = %q, torn = %v", header, torn)
	}
	// Every cell is exact, "\r\n" inside a quoted field included (an ID with one must match).
	if !slices.EqualFunc(got, rows, slices.Equal) {
		t.Fatalf("rows = %q, want %q", got, rows)
	}

	appendRows(t, path, []string{"NCT7", "x", "m", "1"})
	_, got, torn = readAll(t, path)
	want := append(slices.Clone(rows), []string{"NCT7", "x", "m", "1"})
	if torn || !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("after reopen: rows = %q, torn = %v; want %q", got, torn, want)
	}
}

func TestRealRecordIDs(t *testing.T) {
	// IDs and free text from the real sample data survive a write and read unchanged.
	data, err := os.ReadFile("../../testdata/trials.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	path := writeFile(t, "")
	w, err := OpenWriter(path, []string{"nct_id", "raw"})
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range lines {
		if err := w.Append([]string{strings.Repeat("x", i), l}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	i := 0
	_, torn, err := Read(path, func(row []string) error {
		if row[1] != lines[i] {
			t.Errorf("record %d changed in a round trip", i)
		}
		i++
		return nil
	})
	if err != nil || torn || i != len(lines) {
		t.Fatalf("Read: %d rows, torn %v, err %v; want %d rows", i, torn, err, len(lines))
	}
}

func TestHeaders(t *testing.T) {
	l := Layout{IDColumn: "nct_id", Columns: []string{"phase", "area"}}
	got := l.Header()
	want := []string{"nct_id", "phase", "area", "model", "input_tokens", "output_tokens", "cost_usd", "attempts", "latency_ms", "worker", "cached", "cached_tokens", "turns", "tool_calls", "source", "decided_by", "escalated", "service_tier"}
	if !slices.Equal(got, want) {
		t.Errorf("Header = %q, want %q", got, want)
	}
	if got := (Layout{IDColumn: "id"}).FailureHeader(); !slices.Equal(got, []string{"id", "error_class", "message", "attempts", "worker"}) {
		t.Errorf("FailureHeader = %q", got)
	}
	back, err := LayoutOf(l.Header())
	if err != nil || back.IDColumn != "nct_id" || !slices.Equal(back.Columns, l.Columns) {
		t.Errorf("LayoutOf(Header) = %+v, %v; want %+v", back, err, l)
	}
	if _, err := LayoutOf([]string{"nct_id", "phase", "model"}); err == nil {
		t.Error("LayoutOf accepted a header without the bookkeeping columns")
	}
}

func TestRowRoundTrip(t *testing.T) {
	l := Layout{IDColumn: "nct_id", Columns: []string{"phase", "area"}}
	for _, r := range []Row{
		{ID: "NCT1", Values: []string{"2", "oncology"}, Model: "gpt-5-mini", InputTokens: 1200, OutputTokens: 310,
			CostUSD: 0.000917, CostKnown: true, Attempts: 2, LatencyMS: 4100, Worker: 7},
		{ID: "NCT2", Values: []string{"", "=x"}, Model: "local", Attempts: 1, Worker: 0}, // unknown cost
	} {
		cells, err := l.Encode(r)
		if err != nil {
			t.Fatal(err)
		}
		if len(cells) != len(l.Header()) {
			t.Fatalf("Encode gave %d cells for a %d-column header", len(cells), len(l.Header()))
		}
		if r.CostKnown == (cells[6] == "") {
			t.Errorf("cost cell %q for CostKnown %v", cells[6], r.CostKnown)
		}
		back, err := l.Decode(cells)
		if err != nil {
			t.Fatal(err)
		}
		if back.ID != r.ID || !slices.Equal(back.Values, r.Values) || back.Model != r.Model ||
			back.InputTokens != r.InputTokens || back.OutputTokens != r.OutputTokens || back.CostKnown != r.CostKnown ||
			back.CostUSD != r.CostUSD || back.Attempts != r.Attempts || back.LatencyMS != r.LatencyMS || back.Worker != r.Worker {
			t.Errorf("round trip of %+v gave %+v", r, back)
		}
	}
	if _, err := l.Encode(Row{ID: "x", Values: []string{"only one"}}); err == nil {
		t.Error("Encode accepted a row with too few values")
	}
	if _, err := l.Decode([]string{"x", "a", "b", "m", "many", "1", "", "1", "1", "1"}); err == nil {
		t.Error("Decode accepted input_tokens \"many\"")
	}
	f := Failure{ID: "NCT3", Class: "server_error", Message: "boom, twice", Attempts: 5, Worker: 2}
	if back, err := DecodeFailure(EncodeFailure(f)); err != nil || back != f {
		t.Errorf("failure round trip of %+v gave %+v, %v", f, back, err)
	}
}

func TestSafeCell(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", ""},
		{"plain text", "plain text"},
		{"NCT01234567", "NCT01234567"},
		{"=SUM(A1:A2)", "'=SUM(A1:A2)"},
		{"=1+1", "'=1+1"},
		{"+cmd", "'+cmd"},
		{"-cmd|' /C calc'!A0", "'-cmd|' /C calc'!A0"},
		{"@SUM(A1)", "'@SUM(A1)"},
		{"\tx", "'\tx"},
		{"\rx", "'\rx"},
		{"-", "'-"},
		{"+", "'+"},
		{"-3", "-3"},
		{"+1.5", "+1.5"},
		{"-0.25", "-0.25"},
		{"-.5", "-.5"},
		{"-2.5e-3", "-2.5e-3"},
		{"+1E10", "+1E10"},
		{"-1e", "'-1e"},
		{"-1.2.3", "'-1.2.3"},
		{"-.", "'-."},
		{"-1+2", "'-1+2"},
		{"-Inf", "'-Inf"},
		{"-NaN", "'-NaN"},
		{"+0x10", "'+0x10"},
		{"- 3", "'- 3"},
		{"3-4", "3-4"},
		{"'=already", "'=already"},
		{"a=b", "a=b"},
		{"é=", "é="},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got := SafeCell(tt.in)
			if got != tt.want {
				t.Errorf("SafeCell(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if again := SafeCell(got); again != got {
				t.Errorf("SafeCell is not idempotent: %q -> %q", got, again)
			}
		})
	}
}
