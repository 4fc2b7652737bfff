// Package buildinfo says which build of trialcat is running: the release, the commit it was built
// from and the Go toolchain. Commands print it for --version, and anything that names the tool to
// a server (a User-Agent) takes it from here.
package buildinfo

import (
	"fmt"
	"runtime/debug"
)

// Release is the version of this tree; CHANGELOG.md has a section for each.
const Release = "0.17.0"

// commit is set by the Makefile (-ldflags "-X ...buildinfo.commit=..."), for builds made without
// VCS stamping; otherwise the build info's vcs.revision is used.
var commit string

// Info is one build's identity.
type Info struct {
	Release string
	Commit  string // "" when unknown
	Dirty   bool   // built from a tree with uncommitted changes (known only from VCS stamping)
	Go      string
}

// Read returns this binary's build identity.
func Read() Info {
	in := Info{Release: Release, Commit: commit}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return in
	}
	in.Go = bi.GoVersion
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			if in.Commit == "" {
				in.Commit = s.Value
			}
		case "vcs.modified":
			in.Dirty = s.Value == "true"
		}
	}
	if len(in.Commit) > 12 {
		in.Commit = in.Commit[:12]
	}
	return in
}

// String is the one line --version prints: "0.17.0 (commit 0123abcd4567, go1.26.8)".
func (in Info) String() string {
	c := in.Commit
	switch {
	case c == "":
		c = "unknown"
	case in.Dirty:
		c += "+changes"
	}
	return fmt.Sprintf("%s (commit %s, %s)", in.Release, c, in.Go)
}

// UserAgent names the tool and its release to a server: "trialcat/0.17.0".
func UserAgent() string { return "trialcat/" + Release }
