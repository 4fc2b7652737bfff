package buildinfo

import (
	"runtime"
	"strings"
	"testing"
)

func TestStringNamesReleaseCommitAndGo(t *testing.T) {
	got := Info{Release: "1.2.3", Commit: "abc", Go: "go1.99"}.String()
	if got != "1.2.3 (commit abc, go1.99)" {
		t.Fatalf("String() = %q", got)
	}
	if got := (Info{Release: "1.2.3", Go: "go1.99"}).String(); !strings.Contains(got, "commit unknown") {
		t.Fatalf("no commit: %q", got)
	}
	if got := (Info{Release: "1", Commit: "abc", Dirty: true}).String(); !strings.Contains(got, "abc+changes") {
		t.Fatalf("dirty: %q", got)
	}
}

func TestReadGivesThisToolchainAndTheLinkedCommit(t *testing.T) {
	old := commit
	t.Cleanup(func() { commit = old })
	commit = "0123456789abcdef0123"
	in := Read()
	if in.Release != Release || in.Go != runtime.Version() {
		t.Fatalf("Read() = %+v, want release %s and %s", in, Release, runtime.Version())
	}
	if in.Commit != "0123456789ab" {
		t.Fatalf("commit %q: want the linked one cut to 12", in.Commit)
	}
}
