// Package internal_test holds the test of the tree's layering: ARCHITECTURE.md gives every
// package under internal/ a floor, and a package may import only packages on its own floor or
// below. The table in ARCHITECTURE.md is the one place the floors are written.
package internal_test

import (
	"bufio"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/trialcat/trialcat/"

// floors reads the floor table of ARCHITECTURE.md: rows "| N | `pkg`, `pkg` | ... |".
func floors(t *testing.T) map[string]int {
	t.Helper()
	f, err := os.Open("../ARCHITECTURE.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	row := regexp.MustCompile("^\\| *([0-9]+) *\\| *((?:`[a-z0-9/]+`(?:, *)?)+) *\\|")
	name := regexp.MustCompile("`([a-z0-9/]+)`")
	out := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := row.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[1])
		for _, p := range name.FindAllStringSubmatch(m[2], -1) {
			if prev, ok := out[p[1]]; ok {
				t.Errorf("ARCHITECTURE.md names %s on floors %d and %d", p[1], prev, n)
			}
			out[p[1]] = n
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("ARCHITECTURE.md has no floor table (rows like | 0 | `exitcode`, `rundir` | ... |)")
	}
	return out
}

// imports lists every package of the module with the module's packages it imports (tests'
// imports left out), keyed by the path below the module.
func imports(t *testing.T) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./...")
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	all := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(fields[0], module)
		all[pkg] = nil
		for _, imp := range fields[1:] {
			if strings.HasPrefix(imp, module) {
				all[pkg] = append(all[pkg], strings.TrimPrefix(imp, module))
			} else if strings.HasPrefix(imp, "github.com/urfave/cli") {
				all[pkg] = append(all[pkg], imp)
			}
		}
	}
	return all
}

func TestPackagesImportOnlyTheirFloorAndBelow(t *testing.T) {
	fl := floors(t)
	all := imports(t)
	var names []string
	for p := range all {
		names = append(names, p)
	}
	sort.Strings(names)
	for _, pkg := range names {
		name, isInternal := strings.CutPrefix(pkg, "internal/")
		if !isInternal {
			continue // the mains are the top floor: they may import anything
		}
		floor, ok := fl[name]
		if !ok {
			t.Errorf("internal/%s has no floor in ARCHITECTURE.md: add it to the table", name)
			continue
		}
		for _, imp := range all[pkg] {
			if strings.HasPrefix(imp, "github.com/urfave/cli") {
				t.Errorf("internal/%s imports %s: command lines belong in cmd/", name, imp)
				continue
			}
			dep, ok := strings.CutPrefix(imp, "internal/")
			if !ok {
				t.Errorf("internal/%s imports %s, outside internal/", name, imp)
				continue
			}
			if dep == "testkit" {
				t.Errorf("internal/%s imports internal/testkit outside its tests", name)
			}
			if df, ok := fl[dep]; ok && df > floor {
				t.Errorf("internal/%s (floor %d) imports internal/%s (floor %d): a package imports only its own floor and below", name, floor, dep, df)
			}
		}
	}
	for name := range fl {
		if _, ok := all["internal/"+name]; !ok {
			t.Errorf("ARCHITECTURE.md gives internal/%s a floor, but there is no such package", name)
		}
	}
}
