package batch

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
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
