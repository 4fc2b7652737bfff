package report

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trialcat/trialcat/internal/testkit"

	"github.com/trialcat/trialcat/internal/rundir"
)

// TestCheckReportScript renders reports in headless Chromium with scripts/check-report.sh: a
// real report passes, a page missing a section or loading something from the network fails.
func TestCheckReportScript(t *testing.T) {
	const chromium = "/usr/bin/chromium"
	if _, err := os.Stat(chromium); err != nil {
		testkit.Need(t, chromium+" is not installed, so report.html is not checked in a browser (.ci/run installs it: apt-get install chromium)")
	}
	script, err := filepath.Abs(filepath.Join("..", "..", "scripts", "check-report.sh"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		spoil  func(page string) string // changes the written report; nil keeps it
		wantOK bool
		want   []string // lines of the script's output
	}{
		{name: "real report", wantOK: true,
			want: []string{"ok: section #timeline is in the rendered page", "ok: no resource is loaded from the network", "report ok:"}},
		{name: "missing section and a network image", spoil: func(page string) string {
			page = strings.Replace(page, `id="timeline"`, `id="elsewhere"`, 1)
			return strings.Replace(page, "</main>", `<img src="https://example.invalid/pixel.png" alt=""></main>`, 1)
		}, want: []string{"FAIL: section #timeline is in the rendered page", "FAIL: no resource is loaded from the network",
			"FAIL: no script, stylesheet link, frame or image element"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // each case starts Chromium twice; let them overlap
			dir := t.TempDir()
			writeFixture(t, dir)
			page := writeReport(t, dir)
			if tt.spoil != nil {
				writeFile(t, rundir.New(dir).Report(), tt.spoil(page))
			}
			shot := filepath.Join(dir, "shot.png")
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, "bash", script, dir, shot)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			if ok := err == nil; ok != tt.wantOK {
				t.Fatalf("check-report.sh: err %v, want success %v; output:\n%s", err, tt.wantOK, out.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			if fi, err := os.Stat(shot); err != nil || fi.Size() < 10_000 {
				t.Errorf("no real screenshot at %s (%v)", shot, err)
			}
		})
	}
}
