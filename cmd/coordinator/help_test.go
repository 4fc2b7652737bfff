package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/trialcat/trialcat/internal/buildinfo"
)

// commandNames are every subcommand, from the app itself.
func commandNames(t *testing.T) []string {
	t.Helper()
	ran := false
	var names []string
	for _, c := range app(env{}, &ran).Commands {
		if c.Name != "help" {
			names = append(names, c.Name)
		}
	}
	if len(names) < 14 {
		t.Fatalf("only %d commands: %v", len(names), names)
	}
	return names
}

func TestHelpCommandAndVersion(t *testing.T) {
	h := coordinator(t, nil, "help")
	h.want(t, 0, "coordinator help")
	for _, name := range commandNames(t) {
		if !strings.Contains(h.stdout, "   "+name+" ") {
			t.Errorf("coordinator help does not list %s", name)
		}
	}
	s := coordinator(t, nil, "help", "status")
	s.want(t, 0, "coordinator help status")
	if !strings.Contains(s.stdout, "coordinator status") {
		t.Errorf("help status:\n%s", s.stdout)
	}
	v := coordinator(t, nil, "--version")
	v.want(t, 0, "--version")
	if !strings.Contains(v.stdout, buildinfo.Release) || !strings.Contains(v.stdout, "go1.") {
		t.Errorf("--version says %q; want the release and the Go version", v.stdout)
	}
}

// The run's flags belong to the commands that take them; the folder commands' help is short.
func TestSmallCommandsListNoRunFlags(t *testing.T) {
	for _, name := range []string{"status", "merge", "cancel", "import", "limits", "sample", "cache", "compare"} {
		r := coordinator(t, nil, name, "--help")
		r.want(t, 0, name+" --help")
		if n := strings.Count(r.stdout, "\n"); n >= 30 {
			t.Errorf("%s --help is %d lines, want under 30", name, n)
		}
		opts := r.stdout[strings.Index(r.stdout, "OPTIONS:"):]
		for _, runFlag := range []string{"--workers", "--model", "--rpm", "--max-attempts", "--concurrency", "--timeout"} {
			if strings.Contains(opts, runFlag) {
				t.Errorf("%s --help lists the run flag %s", name, runFlag)
			}
		}
	}
}

// A flag whose zero means off or unlimited says so; no help text says "(default: 0)".
func TestNoHelpSaysDefaultZeroAndEveryCommandHasExamples(t *testing.T) {
	for _, name := range append([]string{""}, commandNames(t)...) {
		args := []string{"--help"}
		if name != "" {
			args = []string{name, "--help"}
		}
		r := coordinator(t, nil, args...)
		r.want(t, 0, name+" --help")
		if strings.Contains(r.stdout, "(default: 0)") {
			t.Errorf("coordinator %s --help says (default: 0):\n%s", name, r.stdout)
		}
		if !strings.Contains(r.stdout, "Examples:\n") {
			t.Errorf("coordinator %s --help has no examples", name)
		}
	}
}

// Every flag the README and docs spell for a command is one the command takes.
func TestDocsSpellOnlyFlagsTheCommandsTake(t *testing.T) {
	docs, _ := filepath.Glob("../../docs/*.md")
	docs = append(docs, "../../README.md")
	// `coordinator NAME` and the words after it on the same line, up to a pipe, a ; or a comment.
	cmdLine := regexp.MustCompile(`coordinator ([a-z0-9]+)((?:[ \t]+[^\s|;&#)` + "`" + `]+)*)`)
	flagRe := regexp.MustCompile(` (--?[a-z][a-z0-9-]*)`)
	ran := false
	a := app(env{}, &ran)
	takes := map[string]map[string]bool{}
	for _, c := range a.Commands {
		takes[c.Name] = map[string]bool{"--help": true, "-h": true}
		for _, f := range c.Flags {
			for _, n := range f.Names() {
				takes[c.Name]["--"+n] = true
				takes[c.Name]["-"+n] = true // Go's flag parser takes either
			}
		}
	}
	checked := 0
	for _, path := range docs {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range cmdLine.FindAllStringSubmatch(string(data), -1) {
			flags, ok := takes[m[1]]
			if !ok {
				continue // the root command with run flags, or prose
			}
			for _, f := range flagRe.FindAllStringSubmatch(m[2], -1) {
				checked++
				if !flags[f[1]] {
					t.Errorf("%s: `coordinator %s` is given %s, which it does not take", filepath.Base(path), m[1], f[1])
				}
			}
		}
	}
	if checked < 20 {
		t.Errorf("only %d flags found in the docs' command lines: is the pattern broken?", checked)
	}
}
