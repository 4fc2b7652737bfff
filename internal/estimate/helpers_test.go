package estimate

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/trialcat/trialcat/internal/input"
	"github.com/trialcat/trialcat/internal/prompt"
	"github.com/trialcat/trialcat/internal/taxonomy"
)

const trials = "../../testdata/trials.jsonl"

// defaultTemplate parses the embedded default prompt.
func defaultTemplate(t testing.TB) *prompt.Template {
	t.Helper()
	tmpl, err := prompt.Parse(taxonomy.Source, taxonomy.Prompt())
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}

// rendered is one record's rendered prompt, found independently of the package's pipeline.
type rendered struct {
	id   string
	msgs prompt.Messages
}

// renderAll renders every record of path, one after the other.
func renderAll(t testing.TB, path string, tmpl *prompt.Template) []rendered {
	t.Helper()
	r, err := input.Open(path, input.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []rendered
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := tmpl.Render(rec)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rendered{id: rec.ID, msgs: msgs})
	}
}

// runOK runs an estimate that must succeed.
func runOK(t testing.TB, opts Options) *Report {
	t.Helper()
	rep, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return rep
}

// base are the options of a default run on the real records.
func base() Options {
	return Options{Input: trials, Model: "gpt-5-mini", Workers: 20, Concurrency: 1}
}

// sample writes the first n real records to a file and returns its path: most tests need real
// records, not all 100 of them (the tokenizer is slow under -race).
func sample(t testing.TB, n int) string {
	t.Helper()
	data, err := os.ReadFile(trials)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	if len(lines) < n {
		t.Fatalf("%s has %d lines; want %d", trials, len(lines), n)
	}
	path := filepath.Join(t.TempDir(), "sample.jsonl")
	if err := os.WriteFile(path, bytes.Join(lines[:n], nil), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// small are the options of a default run on the first 10 real records.
func small(t testing.TB) Options {
	t.Helper()
	o := base()
	o.Input = sample(t, 10)
	return o
}
