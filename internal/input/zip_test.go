package input

import (
	"archive/zip"
	"bufio"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeZip writes the bundled studies as a zip of one JSON file each (as the registry's site
// downloads them), indented, with a folder entry and a README.
func writeZip(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	in, _ := os.Open("../../testdata/trials.jsonl")
	defer in.Close()
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	zw.Create("ctg-studies/")
	w, _ := zw.Create("ctg-studies/README.txt")
	w.Write([]byte("not a study"))
	var ids []string
	for sc.Scan() {
		m, err := decodeForTest(sc.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		id := m
		ids = append(ids, id)
		w, err := zw.Create("ctg-studies/" + id + ".json")
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(strings.ReplaceAll(sc.Text(), `","`, "\",\n  \"")))
	}
	zw.Close()
	f.Close()
	return ids
}

func decodeForTest(line []byte) (string, error) {
	r, err := newIter("x", nil, strings.NewReader(string(line)), FormatJSONL, Options{})
	if err != nil {
		return "", err
	}
	rec, _, err := r.next()
	return rec.id, err
}

// A zip of study files reads like the JSON Lines it unpacks to: the same records in the same
// order, each compact; Scan hashes the archive's bytes.
func TestZipOfStudies(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ctg-studies.zip")
	ids := writeZip(t, path)
	st, err := Scan(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Format != FormatZip || st.Records != int64(len(ids)) || st.SHA256 == "" {
		t.Errorf("scan: %+v", st)
	}
	zr, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	jr, err := Open("../../testdata/trials.jsonl", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer jr.Close()
	for i := 0; ; i++ {
		a, errA := zr.Next()
		b, errB := jr.Next()
		if errA == io.EOF && errB == io.EOF {
			break
		}
		if errA != nil || errB != nil {
			t.Fatalf("record %d: %v / %v", i, errA, errB)
		}
		if a.ID != b.ID || string(a.Data) != string(b.Data) {
			t.Fatalf("record %d: %s differs from the JSON Lines' %s", i, a.ID, b.ID)
		}
	}
	// A cut-off archive is refused with a hint.
	data, _ := os.ReadFile(path)
	cut := filepath.Join(t.TempDir(), "cut.zip")
	os.WriteFile(cut, data[:len(data)/2], 0o644)
	if _, err := Scan(context.Background(), cut, Options{}); err == nil || !strings.Contains(err.Error(), "zip") {
		t.Errorf("a cut archive: %v", err)
	}
}
