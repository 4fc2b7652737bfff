package results

import (
	"bytes"
	"encoding/csv"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestCSVReaderReadsWhatTheWriterWrote: any cells over an alphabet of CSV's special bytes,
// written by encoding/csv, read back byte for byte.
func TestCSVReaderReadsWhatTheWriterWrote(t *testing.T) {
	alphabet := []byte("a,\"\r\n =é")
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 2000 {
		var rows [][]string
		for range 1 + rng.IntN(4) {
			row := make([]string, 3)
			for i := range row {
				b := make([]byte, rng.IntN(6))
				for j := range b {
					b[j] = alphabet[rng.IntN(len(alphabet))]
				}
				row[i] = string(b)
			}
			rows = append(rows, row)
		}
		var buf bytes.Buffer
		w := csv.NewWriter(&buf)
		if err := w.WriteAll(rows); err != nil {
			t.Fatal(err)
		}
		r := newCSVReader(bytes.NewReader(buf.Bytes()))
		var got [][]string
		for {
			rec, _, err := r.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("trial %d: %v reading %q", trial, err, buf.String())
			}
			got = append(got, rec)
		}
		// A row of one empty cell is written as an empty line, which CSV readers skip.
		want := slices.DeleteFunc(slices.Clone(rows), func(r []string) bool { return len(r) == 1 && r[0] == "" })
		if !slices.EqualFunc(got, want, slices.Equal) {
			t.Fatalf("trial %d: read %q from %q, want %q", trial, got, buf.String(), want)
		}
	}
}
