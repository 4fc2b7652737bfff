package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPrintConfigRoundTripsAndTheCommandLineWins(t *testing.T) {
	dir := t.TempDir()
	r := coordinator(t, nil, "run", "--input", "trials.json", "--workers", "7", "--batches", "40", "--temperature", "0.5",
		"--sbatch-arg", "x", "--base-url", "http://user:secret@example.test/v1", "--print-config")
	if r.code == 0 {
		t.Fatalf("run takes no --sbatch-arg, yet it was accepted:\n%s", r.stdout)
	}
	r = coordinator(t, nil, "run", "--input", "trials.json", "--workers", "7", "--batches", "40", "--temperature", "0.5",
		"--timeout", "90s", "--base-url", "http://user:secret@example.test/v1", "--print-config")
	r.want(t, 0, "--print-config")
	if strings.Contains(r.stdout, "secret") {
		t.Fatalf("--print-config wrote the base URL's password:\n%s", r.stdout)
	}
	for _, w := range []string{"workers: 7\n", "batches: \"40\"\n", "temperature: 0.5\n", "timeout: 1m30s\n", "input: trials.json\n", "model: gpt-5-mini\n"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("--print-config lacks %q:\n%s", w, r.stdout)
		}
	}
	cfg := filepath.Join(dir, "study.yaml")
	if err := os.WriteFile(cfg, []byte(r.stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	again := coordinator(t, nil, "run", "--config", cfg, "--print-config")
	again.want(t, 0, "--config FILE --print-config")
	if again.stdout != r.stdout {
		t.Errorf("the settings file does not round-trip:\n--- first\n%s\n--- from the file\n%s", r.stdout, again.stdout)
	}
	// The command line wins over the file, at the root as in `run`.
	over := coordinator(t, nil, "--config", cfg, "--workers", "3", "--print-config")
	over.want(t, 0, "--config with --workers")
	if !strings.Contains(over.stdout, "workers: 3\n") || !strings.Contains(over.stdout, "batches: \"40\"\n") {
		t.Errorf("--workers 3 over the file:\n%s", over.stdout)
	}
}

func TestConfigRefusesUnknownKeysAndBadValues(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name, body string
		want       []string
	}{
		{"typo.yaml", "wokers: 3\n", []string{`"wokers"`, "did you mean workers"}},
		{"type.yaml", "workers: many\n", []string{"workers"}},
		{"duration.yaml", "timeout: soon\n", []string{"timeout", "duration"}},
		{"list.yaml", "model: [a, b]\n", []string{"model", "a list"}},
		{"notyaml.yaml", "{{{", []string{"not a YAML mapping"}},
	}
	for _, tc := range cases {
		r := coordinator(t, nil, "estimate", "--config", write(tc.name, tc.body), "--input", "x.json")
		r.want(t, 2, tc.name)
		isUsage(t, r)
		for _, w := range tc.want {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("%s: the message lacks %q:\n%s", tc.name, w, r.stderr)
			}
		}
	}
	coordinator(t, nil, "run", "--config", filepath.Join(dir, "missing.yaml")).want(t, 2, "a missing --config")
	// A device would be read for ever, a huge file is no settings file, an alias bomb expands.
	coordinator(t, nil, "run", "--config", "/dev/zero").want(t, 2, "--config /dev/zero")
	coordinator(t, nil, "run", "--config", dir).want(t, 2, "--config of a folder")
	coordinator(t, nil, "run", "--config", write("huge.yaml", "# "+strings.Repeat("x", 2<<20)+"\n")).want(t, 2, "a 2 MB --config")
	bomb := "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n" +
		"d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n" +
		"g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: [*g, *g, *g, *g, *g, *g, *g, *g, *g]\n"
	coordinator(t, nil, "run", "--config", write("bomb.yaml", bomb)).want(t, 2, "an alias bomb")

	// A study's file can hold another command's settings: estimate leaves slurm's alone.
	shared := write("shared.yaml", "partition: gpu\nworkers: 4\nmodel: gpt-5-nano\n")
	r := coordinator(t, nil, "split", "--config", shared, "--input", "x.json", "--out", filepath.Join(dir, "o"))
	if r.code != 2 || !strings.Contains(r.stderr, "x.json") {
		t.Errorf("split with a shared file should get past the file and fail on the missing input: exit %d\n%s", r.code, r.stderr)
	}
}
