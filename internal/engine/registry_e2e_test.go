package engine_test

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trialcat/trialcat/internal/fakeai"
	"github.com/trialcat/trialcat/internal/fakereg"
	"github.com/trialcat/trialcat/internal/results"
)

// The monthly recipe against the fakes: sync the registry, run over the mirror; a month of edits
// and new studies later, sync again (only what changed is fetched) and run with --since-run
// (only what changed is asked); drift shows the changes and no label moving on unchanged studies.
func TestMonthlyRecipe(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end registry test")
	}
	reg, regURL := startRegistry(t, fakereg.Config{Seed: 2, Rate429: 0.1, Rate500: 0.05, RateCut: 0.05})
	fake, url := startFake(t, fakeai.Config{Latency: fakeai.LatencyModel{Base: 5 * time.Millisecond}})
	dir := t.TempDir()
	mirror, nov, dec := filepath.Join(dir, "mirror"), filepath.Join(dir, "nov"), filepath.Join(dir, "dec")
	env := []string{"OPENAI_API_KEY=" + testKey}
	syncArgs := []string{"sync", "--mirror", mirror, "--registry-url", regURL, "--fetch-rpm", "100000", "--page-size", "30"}
	if r := runBin(t, nil, "coordinator", syncArgs...); r.code != 0 || !strings.Contains(r.stdout, "first sync: 100 studies") {
		t.Fatalf("first sync: exit %d\n%s%s", r.code, r.stdout, tail(r.stderr, 20))
	}
	studies := filepath.Join(mirror, "studies.jsonl")
	if r := runBin(t, env, "coordinator", "--workers", "4", "--input", studies, "--out", nov, "--base-url", url); r.code != 0 {
		t.Fatalf("november run: exit %d\n%s", r.code, tail(r.stderr, 20))
	}

	edited, added := reg.NewMonth(10, 5, "2026-12-01")
	reg.ResetStats()
	r := runBin(t, nil, "coordinator", syncArgs...)
	if r.code != 0 || !strings.Contains(r.stdout, "5 new, 10 changed, 0 unchanged; 105 studies in the mirror") {
		t.Fatalf("second sync: exit %d\n%s%s", r.code, r.stdout, tail(r.stderr, 20))
	}
	if served := reg.Stats().Served; len(served) != 15 {
		t.Errorf("the second sync fetched %d studies, want the 15 updated", len(served))
	}

	before := fake.Stats().PerID
	r = runBin(t, env, "coordinator", "--workers", "4", "--input", studies, "--out", dec, "--base-url", url, "--since-run", nov)
	if r.code != 0 || !strings.Contains(r.stdout, "90 answers carried from the earlier run") {
		t.Fatalf("december run: exit %d\n%s%s", r.code, r.stdout, tail(r.stderr, 20))
	}
	after := fake.Stats().PerID
	asked := map[string]bool{}
	for id, n := range after {
		if n > before[id] {
			asked[id] = true
		}
	}
	want := map[string]bool{}
	for _, id := range append(edited, added...) {
		want[id] = true
	}
	if len(asked) != len(want) {
		t.Errorf("the december run asked %d records, want the %d new and changed", len(asked), len(want))
	}
	for id := range want {
		if !asked[id] {
			t.Errorf("%s is new or changed but was not asked", id)
		}
	}
	carried := 0
	if _, err := results.ReadFile(filepath.Join(dec, "final_results.csv"), func(_ results.Layout, row results.Row) error {
		if row.Source == results.SourceCarried {
			carried++
			if want[row.ID] || row.CostUSD != 0 {
				t.Errorf("%s carried (cost %v) though it changed", row.ID, row.CostUSD)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if ok, failed := assertExactlyOnce(t, dec, reg.IDs()); ok != 105 || failed != 0 || carried != 90 {
		t.Errorf("december: %d answered, %d failed, %d carried", ok, failed, carried)
	}

	r = runBin(t, nil, "coordinator", "drift", nov, dec, "--html", filepath.Join(dir, "drift.html"))
	if r.code != 0 || !strings.Contains(r.stdout, "5 new, 0 removed, 10 changed, 90 unchanged") ||
		!strings.Contains(r.stdout, "no label moved on a record whose content did not change") {
		t.Errorf("drift: exit %d\n%s%s", r.code, r.stdout, tail(r.stderr, 10))
	}
	if page, err := os.ReadFile(filepath.Join(dir, "drift.html")); err != nil || !strings.Contains(string(page), "10 changed") {
		t.Errorf("drift.html: %v", err)
	}
}

// coordinator fetch killed with SIGKILL mid-fetch, then run again, fetches at most the page in
// flight twice, writes every study once, and the output appears only when whole.
func TestFetchKilledAndRerun(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end registry test")
	}
	reg, regURL := startRegistry(t, fakereg.Config{PageDelay: 150 * time.Millisecond})
	out := filepath.Join(t.TempDir(), "studies.jsonl")
	args := []string{"fetch", "--out", out, "--registry-url", regURL, "--fetch-rpm", "100000", "--page-size", "10"}
	cmd, logs := startBin(t, nil, "coordinator", args...)
	waitFor(t, "three pages checkpointed", 60*time.Second, func() bool {
		b, err := os.ReadFile(out + ".fetch.json")
		return err == nil && strings.Contains(string(b), `"pages": 3`)
	})
	killAndWaitFor(t, cmd, "the fetch to die", nil)
	if _, err := os.Stat(out); err == nil {
		t.Fatalf("the output is in place after a kill mid-fetch\n%s", logs.String())
	}
	r := runBin(t, nil, "coordinator", args...)
	if r.code != 0 || !strings.Contains(r.stdout, "100 studies in "+out) {
		t.Fatalf("rerun: exit %d\n%s%s", r.code, r.stdout, tail(r.stderr, 10))
	}
	twice := 0
	for _, n := range reg.Stats().Served {
		if n > 1 {
			twice++
		}
	}
	if twice > 10 {
		t.Errorf("%d studies fetched twice: more than the page in flight", twice)
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(readFile(t, out)), "\n") {
		id := line[strings.Index(line, `"nctId":"`)+9:]
		id = id[:strings.Index(id, `"`)]
		if seen[id] {
			t.Errorf("%s written twice", id)
		}
		seen[id] = true
		if line != string(reg.Study(id)) {
			t.Errorf("%s differs from the registry's", id)
		}
	}
	if len(seen) != 100 {
		t.Errorf("%d studies, want 100", len(seen))
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// startRegistry serves the fake registry over the bundled sample and returns it with its API base.
func startRegistry(t *testing.T, cfg fakereg.Config) (*fakereg.Server, string) {
	t.Helper()
	data, err := os.ReadFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := fakereg.New(cfg, data, "2026-11-01T09:00:00")
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(reg)
	t.Cleanup(hs.Close)
	return reg, hs.URL + "/api/v2"
}
