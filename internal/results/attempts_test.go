package results

import (
	"os"
	"path/filepath"
	"testing"
)

func TestAttemptJournalKeepsEveryID(t *testing.T) {
	path := filepath.Join(t.TempDir(), "attempts.log")
	a, _, err := OpenAttemptLog(path)
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{"NCT1", "A\r\nB", "C\nD", `"quoted"`, "tab\tand\u2028"}
	for _, id := range ids {
		for range 2 {
			if err := a.Record(id); err != nil {
				t.Fatal(err)
			}
		}
	}
	a.Close()
	// An older journal's raw line still counts.
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString("NCT1\n")
	f.Close()
	a, counts, err := OpenAttemptLog(path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for _, id := range ids {
		want := 2
		if id == "NCT1" {
			want = 3
		}
		if counts[id] != want {
			t.Errorf("%q: %d attempts counted, want %d (all: %v)", id, counts[id], want, counts)
		}
	}
	if len(counts) != len(ids) {
		t.Errorf("%d IDs counted, want %d: an ID was split or merged (%v)", len(counts), len(ids), counts)
	}
}

func TestRefundsAndFilter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "attempts.log")
	a, _, err := OpenAttemptLog(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"A", "A", "B", "C", "C", "C"} {
		if err := a.Record(id); err != nil {
			t.Fatal(err)
		}
	}
	// B's attempt was abandoned by an interrupt; one of A's too.
	if err := a.Refund("B"); err != nil {
		t.Fatal(err)
	}
	if err := a.Refund("A"); err != nil {
		t.Fatal(err)
	}
	a.Close()
	a, counts, err := OpenAttemptLog(path)
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	if counts["A"] != 1 || counts["B"] != 0 || counts["C"] != 3 || len(counts) != 2 {
		t.Errorf("counts %v; want A 1, C 3, B none", counts)
	}
	// A rerun retries C (it failed) from scratch and keeps A's count.
	if err := FilterAttempts(path, func(id string) bool { return id != "C" }); err != nil {
		t.Fatal(err)
	}
	a, counts, err = OpenAttemptLog(path)
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	if counts["A"] != 1 || counts["C"] != 0 || len(counts) != 1 {
		t.Errorf("after the filter: %v; want only A 1", counts)
	}
}
