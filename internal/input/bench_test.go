package input

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// benchRecords is the size of the generated benchmark input.
const benchRecords = 100_000

// writeBenchInput writes n trial-shaped records as JSON Lines (about 700 bytes each) and
// returns the path and size.
func writeBenchInput(tb testing.TB, n int) (string, int64) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "bench.jsonl")
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriter(f)
	summary := strings.Repeat("A randomized, double-blind study of a digital therapeutic. ", 6)
	for i := range n {
		fmt.Fprintf(w, `{"protocolSection":{"identificationModule":{"nctId":"NCT%08d","orgStudyIdInfo":{"id":"ORG-%d"},`+
			`"briefTitle":"Study %d of a treatment for episodic migraine"},"statusModule":{"overallStatus":"RECRUITING",`+
			`"startDateStruct":{"date":"2023-08-01"}},"conditionsModule":{"conditions":["Migraine","Headache"],"keywords":["CGRP"]},`+
			`"descriptionModule":{"briefSummary":%q}},"hasResults":false}`+"\n", i, i, i, summary)
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	st, err := f.Stat()
	if err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	return path, st.Size()
}

func BenchmarkScan(b *testing.B) {
	path, size := writeBenchInput(b, benchRecords)
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		st, err := Scan(context.Background(), path, Options{})
		if err != nil || st.Records != benchRecords {
			b.Fatalf("Scan = %+v, %v", st, err)
		}
	}
}

func BenchmarkNext(b *testing.B) {
	path, size := writeBenchInput(b, benchRecords)
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		r, err := Open(path, Options{})
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for {
			_, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		r.Close()
		if n != benchRecords {
			b.Fatalf("read %d records", n)
		}
	}
}
