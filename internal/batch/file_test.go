package batch

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trialcat/trialcat/internal/exitcode"
	"github.com/trialcat/trialcat/internal/record"
)

func writeBatch(t *testing.T, path string, ids ...string) {
	t.Helper()
	w, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if err := w.Add(id, []byte(`{"nct_id":`+quote(id)+`}`)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

func quote(s string) string {
	b := []byte{'"'}
	for _, r := range s {
		if r == '\n' {
			b = append(b, '\\', 'n')
			continue
		}
		b = append(b, string(r)...)
	}
	return string(append(b, '"'))
}

func ids(t *testing.T, path string) []string {
	t.Helper()
	var got []string
	if err := IDs(path, "", func(id string) error { got = append(got, id); return nil }); err != nil {
		t.Fatal(err)
	}
	return got
}

// The merge takes a batch's IDs from its index, which must give exactly the records' IDs, and
// must not be trusted once the batch file is newer (edited by hand).
func TestIDsFromTheIndexAndNotFromAStaleOne(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "batch_0.json")
	want := []string{"NCT1", "two\nlines", "NCT3"}
	writeBatch(t, path, want...)
	if _, err := os.Stat(filepath.Join(dir, "batch_0.ids")); err != nil {
		t.Fatalf("no index written: %v", err)
	}
	if got := ids(t, path); !slices.Equal(got, want) {
		t.Fatalf("IDs = %q; want %q", got, want)
	}
	// A hand edit of the batch file: the index is older and is ignored.
	if err := os.WriteFile(path, []byte(`[{"nct_id":"EDITED"}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Minute)
	if err := os.Chtimes(path, future, future); err != nil {
		t.Fatal(err)
	}
	if got := ids(t, path); !slices.Equal(got, []string{"EDITED"}) {
		t.Errorf("IDs after a hand edit = %q; want the file's own", got)
	}
}

// A file not named batch_N.json gets no index and is read from its records.
func TestIDsWithoutAnIndex(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mine.json")
	writeBatch(t, path, "A", "B")
	if got := ids(t, path); !slices.Equal(got, []string{"A", "B"}) {
		t.Errorf("IDs = %q", got)
	}
}

// records reads a batch with Read.
func records(t *testing.T, path string) ([]record.Record, error) {
	t.Helper()
	var got []record.Record
	err := Read(path, "", func(r record.Record) error { got = append(got, r); return nil })
	return got, err
}

// A batch the split wrote is read from its lines and its index: the same records, IDs and
// positions as parsing it gives, for one record and for several with awkward IDs.
func TestReadByIndexAgreesWithParsing(t *testing.T) {
	for _, want := range [][]string{{"ONE"}, {"NCT1", "two\nlines", "é ≥ q", "NCT4"}} {
		dir := t.TempDir()
		path := filepath.Join(dir, "batch_3.json")
		writeBatch(t, path, want...)
		fast, err := records(t, path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(dir, "batch_3.ids")); err != nil {
			t.Fatal(err)
		}
		parsed, err := records(t, path)
		if err != nil {
			t.Fatal(err)
		}
		if len(fast) != len(want) || !reflect.DeepEqual(fast, parsed) {
			t.Errorf("%q: from the index %v, parsed %v", want, fast, parsed)
		}
	}
}

// A batch file damaged without its time changing (the index still looks current) is refused
// with a usage error that says what to do, never read as fewer or other records.
func TestReadByIndexRefusesADamagedBatch(t *testing.T) {
	for name, damage := range map[string]func(string) string{
		"cut short":       func(s string) string { return s[:len(s)-30] },
		"no closing":      func(s string) string { return strings.TrimSuffix(s, "]\n") },
		"record dropped":  func(s string) string { return strings.Replace(s, `{"nct_id":"B"},`+"\n", "", 1) },
		"record added":    func(s string) string { return strings.Replace(s, "\n]", ",\n"+`{"nct_id":"X"}`+"\n]", 1) },
		"two on a line":   func(s string) string { return strings.Replace(s, ",\n", ",", 1) },
		"trailing bytes":  func(s string) string { return s + "junk" },
		"pretty-printed":  func(s string) string { return strings.ReplaceAll(s, `{"nct_id"`, "{\n\"nct_id\"") },
		"no opening line": func(s string) string { return strings.TrimPrefix(s, "[\n") },
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "batch_0.json")
			writeBatch(t, path, "A", "B", "C")
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(damage(string(b))), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(path, st.ModTime(), st.ModTime()); err != nil {
				t.Fatal(err)
			}
			got, err := records(t, path)
			if !errors.Is(err, exitcode.ErrUsage) || !strings.Contains(err.Error(), "not as the split wrote it") {
				t.Fatalf("read %d records, error %v; want the damage refused", len(got), err)
			}
		})
	}
}
