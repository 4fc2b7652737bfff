package input

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trialcat/trialcat/internal/exitcode"
)

func TestErrors(t *testing.T) {
	const fields = "looked for nct_id, nctId, NCTId, protocolSection.identificationModule.nctId"
	tests := []struct {
		name    string
		content string                     // file content
		path    func(tb testing.TB) string // instead of content
		opts    Options
		// Where and what: line, column, record index, and parts of the message and hint.
		line, col int
		index     int64
		msg, hint string
	}{
		{name: "missing file", path: func(tb testing.TB) string { return filepath.Join(tb.TempDir(), "nope.json") },
			index: -1, msg: "no such file", hint: "check the path"},
		{name: "directory", path: func(tb testing.TB) string { return tb.TempDir() },
			index: -1, msg: "is a directory", hint: "pass the input file"},
		{name: "empty file", content: "", index: -1, msg: "empty file"},
		{name: "only whitespace", content: " \r\n\t\n", index: -1, msg: "empty file"},
		{name: "only a byte order mark", content: bomUTF8 + "\n", index: -1, msg: "empty file"},

		{name: "empty array", content: "[ ]\n", index: -1, msg: "no records: the JSON array is empty"},
		{name: "empty studies list", content: `{"studies": [], "nextPageToken": null}`, index: -1, msg: `no records: the "studies" list is empty`},
		{name: "csv header without rows", content: "nct_id,title\n", index: -1, msg: "no records: the CSV file has a header row but no data rows"},

		{name: "top-level number", content: "42\n", line: 1, col: 1, index: -1, msg: "a single JSON value, a number, not records", hint: "accepted formats: a JSON array"},
		{name: "top-level string", content: ` "NCT1"`, line: 1, col: 2, index: -1, msg: "a single JSON value, a string"},
		{name: "top-level null", content: "null", line: 1, col: 1, index: -1, msg: "a single JSON value, null"},
		{name: "top-level true", content: "\ntrue\n", line: 2, col: 1, index: -1, msg: "a single JSON value, a boolean"},

		{name: "trailing comma in a record", content: "[\n  {\"nct_id\": \"NCT1\"},\n  {\"nct_id\": \"NCT2\",}\n]",
			line: 3, col: 21, index: 1, msg: "trailing comma before '}'"},
		{name: "missing comma between records", content: "[{\"nct_id\":\"A\"}\n{\"nct_id\":\"B\"}]",
			line: 2, col: 1, index: 0, msg: "invalid character '{' after array element"},
		{name: "trailing comma after the last record", content: "[{\"nct_id\":\"A\"},\n]",
			line: 2, col: 1, index: 0, msg: "trailing comma before ']'"},
		{name: "truncated array", content: `[{"nct_id":"A"},{"nct_id":"B"`,
			line: 1, col: 30, index: 1, msg: "unexpected end of file", hint: "truncated"},
		{name: "unterminated string", content: `[{"nct_id":"A}]`,
			line: 1, col: 16, index: 0, msg: "unexpected end of file"},
		{name: "column counts characters", content: `[{"nct_id":"Ä", x}]`,
			line: 1, col: 17, index: 0, msg: "invalid character 'x' looking for beginning of object key string"},
		{name: "bad literal", content: `[{"nct_id":"A","ok":tru}]`,
			line: 1, col: 24, index: 0, msg: "invalid character '}' in literal true (expecting 'e')"},
		{name: "bad number", content: "[{\"nct_id\":\"A\",\"n\":-x}]",
			line: 1, col: 21, index: 0, msg: "invalid character 'x' in numeric literal"},
		{name: "bad escape", content: `[{"nct_id":"A\q"}]`,
			line: 1, col: 15, index: 0, msg: `invalid character 'q' in string escape code`},
		{name: "raw control character in a string", content: "[{\"nct_id\":\"A\tB\"}]",
			line: 1, col: 14, index: 0, msg: "invalid control character U+0009 in string", hint: `escape it`},
		{name: "data after the array", content: "[{\"nct_id\":\"A\"}]\n[]",
			line: 2, col: 1, index: -1, msg: "unexpected data after the end of the JSON array"},
		{name: "array element not an object", content: `[{"nct_id":"A"}, 5]`,
			line: 1, col: 18, index: 1, msg: "record is not a JSON object (got a number)"},
		{name: "column after a byte order mark", content: bomUTF8 + `[{"nct_id":"A"}, 5]`,
			line: 1, col: 18, index: 1, msg: "record is not a JSON object (got a number)"},
		{name: "array element is an array", content: "[\n[{\"nct_id\":\"A\"}]]",
			line: 2, col: 1, index: 0, msg: "record is not a JSON object (got an array)"},

		{name: "json lines: bad line", content: "{\"nct_id\":\"A\"}\n\n{\"nct_id\": B}\n",
			line: 3, col: 12, index: 1, msg: "invalid character 'B' looking for beginning of value"},
		{name: "json lines: pretty-printed object", content: "{\n  \"nct_id\": \"A\"\n}\n",
			line: 1, col: 2, index: 0, msg: "the line ends inside a JSON value", hint: "JSON Lines needs each object complete on one line"},
		{name: "json lines: two objects on a line", content: `{"nct_id":"A"} {"nct_id":"B"}`,
			line: 1, col: 16, index: 0, msg: "unexpected data after the object on the same line"},
		{name: "json lines: a line is not an object", content: "{\"nct_id\":\"A\"}\n[1]\n",
			line: 2, col: 1, index: 1, msg: "record is not a JSON object (got an array)"},
		{name: "json lines: truncated last line", content: "{\"nct_id\":\"A\"}\n{\"nct_id\":\"B",
			line: 2, col: 13, index: 1, msg: "unexpected end of file"},

		{name: "studies page: bad record", content: `{"studies":[{"nct_id":"A"},{"nct_id":"B" "x":1}]}`,
			line: 1, col: 42, index: 1, msg: `invalid character '"' after object key:value pair`},
		{name: "studies page: two studies keys", content: `{"studies":[{"nct_id":"A"}],` + "\n" + `"studies":[]}`,
			line: 2, col: 1, index: -1, msg: `the page has a second "studies" key`},
		{name: "studies page: data after it", content: `{"studies":[{"nct_id":"A"}]} x`,
			line: 1, col: 30, index: -1, msg: "unexpected data after the end of the studies page"},

		{name: "no ID", content: "[{\"nct_id\":\"A\"},\n {\"title\":\"x\"}]",
			line: 2, col: 2, index: 1, msg: "no ID: " + fields, hint: "pass --id-field PATH"},
		{name: "no ID in a studies page", content: `{"studies":[{"protocolSection":{"identificationModule":{}}}]}`,
			line: 1, col: 13, index: 0, msg: "no ID: " + fields},
		{name: "empty ID", content: `{"nctId":"   "}`,
			line: 1, col: 1, index: 0, msg: `empty ID: field nctId is "   "`},
		{name: "ID is an object", content: "{\"nct_id\":\"A\"}\n{\"nct_id\":{\"v\":\"B\"}}\n",
			line: 2, col: 1, index: 1, msg: "no ID: " + fields + " (nct_id is an object; an ID must be a string or a number)"},
		{name: "ID is an array", content: `{"protocolSection":{"identificationModule":{"nctId":["A"]}}}`,
			line: 1, col: 1, index: 0, msg: "protocolSection.identificationModule.nctId is an array"},
		{name: "no ID at --id-field", content: `{"nct_id":"A"}`, opts: Options{IDField: "x.y"},
			line: 1, col: 1, index: 0, msg: "no ID: looked for x.y", hint: "check --id-field"},
		{name: "bad --id-field", content: `{"nct_id":"A"}`, opts: Options{IDField: "a..b"},
			index: -1, msg: `--id-field "a..b" has an empty path segment`},
		{name: "csv: no ID column", content: "id,title\nA,x\n",
			line: 2, index: 0, msg: "no ID: " + fields + "; the CSV header has id, title", hint: "name the column"},
		{name: "csv: empty ID", content: "nct_id,title\nA,x\n ,y\n",
			line: 3, index: 1, msg: `empty ID: column nct_id is " "`},

		{name: "invalid UTF-8 in a JSON string", content: "[{\"nct_id\":\"A\",\"t\":\"caf\xE9\"}]",
			line: 1, col: 24, index: 0, msg: "invalid UTF-8 byte 0xE9", hint: "re-encode the file as UTF-8"},
		{name: "invalid UTF-8 outside strings", content: "[{\"nct_id\":\"A\"}\xA0]",
			line: 1, col: 16, index: 0, msg: "invalid UTF-8 byte 0xA0"},
		{name: "invalid UTF-8 in JSON lines", content: "{\"nct_id\":\"A\"}\n{\"nct_id\":\"B\",\"t\":\"x\xC3(\"}\n",
			line: 2, col: 21, index: 1, msg: "invalid UTF-8 byte 0xC3"},
		{name: "invalid UTF-8 in CSV", content: "nct_id,title\nA,ok\nB,caf\xE9\n",
			line: 3, col: 6, index: 1, msg: "invalid UTF-8 byte 0xE9", hint: "re-encode"},
		{name: "invalid UTF-8 in the CSV header", content: bomUTF8 + "nct_id,t\xEDtle\nA,ok\n",
			line: 1, col: 9, index: -1, msg: "invalid UTF-8 byte 0xED"},
		{name: "UTF-16", content: "\xFF\xFE[\x00{\x00", index: -1, msg: "UTF-16", hint: "re-encode"},

		{name: "csv: ragged row", content: "nct_id,title\nA,x\nB,y,z\n",
			line: 3, index: 1, msg: "CSV row has 3 fields but the header has 2"},
		{name: "csv: bare quote", content: "nct_id,title\nA,say \"hi\"\n",
			line: 2, col: 7, index: 0, msg: `CSV bare " in non-quoted-field`, hint: "double its quotes"},
		{name: "csv: column counts characters", content: "nct_id,title\nA,çà \"hi\"\n",
			line: 2, col: 6, index: 0, msg: `CSV bare " in non-quoted-field`},
		{name: "csv: repeated column", content: "nct_id,x,x\nA,1,2\n",
			line: 1, index: -1, msg: `CSV header names column "x" twice (columns 2 and 3)`},

		{name: "binary", content: "\x00\x01\x02\x03trial", index: -1, msg: "unrecognised input format: the file looks binary",
			hint: "accepted formats: a JSON array of objects, JSON Lines (one object per line), a ClinicalTrials.gov API v2 page"},
		{name: "gzip", content: "\x1F\x8B\x08\x00\x00\x00", index: -1, msg: "gzip-compressed", hint: "gunzip"},
		{name: "XML", content: "<?xml version=\"1.0\"?>\n<studies/>", line: 1, col: 1, index: -1,
			msg: "looks like XML", hint: "or CSV with a header row"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := ""
			if tt.path != nil {
				path = tt.path(t)
			} else {
				path = writeFile(t, "input.txt", tt.content)
			}
			_, scanErr := Scan(context.Background(), path, tt.opts)
			_, _, readErr := readAll(t, path, tt.opts)
			for _, c := range []struct {
				by  string
				err error
			}{{"Scan", scanErr}, {"Next", readErr}} {
				var e *Error
				if !errors.As(c.err, &e) || !errors.Is(c.err, exitcode.ErrUsage) {
					t.Fatalf("%s: error %v (%T), want an *Error wrapping exitcode.ErrUsage", c.by, c.err, c.err)
				}
				if e.Path != path || e.Line != tt.line || e.Column != tt.col || e.Index != tt.index ||
					!strings.Contains(e.Msg, tt.msg) || !strings.Contains(e.Hint, tt.hint) {
					t.Errorf("%s: got %#v\nwant line %d, column %d, index %d, msg containing %q, hint containing %q",
						c.by, e, tt.line, tt.col, tt.index, tt.msg, tt.hint)
				}
				if !strings.HasPrefix(e.Error(), path) {
					t.Errorf("%s: %q does not start with the path", c.by, e.Error())
				}
			}
			if scanErr.Error() != readErr.Error() {
				t.Errorf("Scan and Next disagree:\n%v\n%v", scanErr, readErr)
			}
		})
	}
}

func TestErrorString(t *testing.T) {
	tests := []struct {
		err  Error
		want string
	}{
		{Error{Path: "trials.json", Line: 12, Column: 5, Index: 11, Msg: "no ID: looked for nct_id", Hint: "pass --id-field PATH"},
			"trials.json:12:5: record 11: no ID: looked for nct_id; pass --id-field PATH"},
		{Error{Path: "t.jsonl", Line: 3, Column: 1, Index: 2, ID: "NCT1", Msg: "duplicate ID"},
			"t.jsonl:3:1: record 2 (ID NCT1): duplicate ID"},
		{Error{Path: "t.csv", Line: 4, Index: 2, Msg: "ragged"}, "t.csv:4: record 2: ragged"},
		{Error{Path: "t.json", Index: -1, Msg: "empty file", Hint: "add records"}, "t.json: empty file; add records"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestUnreadableFile(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root can read any file")
	}
	path := writeFile(t, "secret.json", `[{"nct_id":"A"}]`)
	if err := os.Chmod(path, 0); err != nil {
		t.Fatal(err)
	}
	_, err := Scan(context.Background(), path, Options{})
	if !errors.Is(err, exitcode.ErrUsage) || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("Scan = %v, want a usage error saying permission denied", err)
	}
}

// Plain text is not taken for a one-column CSV: the message says the file is neither and shows
// how it starts, instead of asking for an ID column.
func TestTextIsNeitherJSONNorCSV(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(path, []byte("hello world\nthis is text\n"), 0o644)
	_, err := Scan(context.Background(), path, Options{})
	if err == nil || !errors.Is(err, exitcode.ErrUsage) || !strings.Contains(err.Error(), "neither JSON") || !strings.Contains(err.Error(), `"hello world"`) {
		t.Fatalf("Scan(text) = %v", err)
	}
	if strings.Contains(err.Error(), "--id-field") {
		t.Errorf("the message asks for an ID column of a file that is not CSV: %v", err)
	}
}
