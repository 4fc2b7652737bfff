package engine_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trialcat/trialcat/internal/testkit"

	"github.com/trialcat/trialcat/internal/fakeai"
)

const testKey = testkit.Key

// sample is the bundled real trials file.
const sample = "../../testdata/trials.jsonl"

type runResult struct {
	code           int
	stdout, stderr string
}

// runBin runs one of the built binaries with an explicit environment.
func runBin(t testing.TB, env []string, name string, args ...string) runResult {
	t.Helper()
	needBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), binDeadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, name), args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "SLURM_CONF=" + os.Getenv("SLURM_CONF")}, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %v still running after %s: killed\n%s", name, args, binDeadline, errb.String())
	}
	res := runResult{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run %s: %v", name, err)
	}
	return res
}

// startFake serves the fake OpenAI-compatible API and returns its base URL.
func startFake(t testing.TB, cfg fakeai.Config) (*fakeai.Server, string) {
	t.Helper()
	return testkit.StartFake(t, cfg)
}

// startFakeWrapped serves the fake behind wrap (which may watch every request).
func startFakeWrapped(t testing.TB, cfg fakeai.Config, wrap func(http.Handler) http.Handler) (*fakeai.Server, string) {
	t.Helper()
	if cfg.APIKey == "" {
		cfg.APIKey = testKey
	}
	s := fakeai.New(cfg)
	hs := httptest.NewServer(wrap(s))
	t.Cleanup(hs.Close)
	return s, hs.URL + "/v1"
}

// readCSV reads a whole CSV file.
func readCSV(t testing.TB, path string) [][]string { return testkit.ReadCSV(t, path) }

// sampleIDs lists the NCT IDs of a JSON Lines file of trials, in order.
func sampleIDs(t testing.TB, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ids []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		ids = append(ids, sampleIDOf(t, sc.Text()))
	}
	return ids
}

// sampleIDOf is the NCT ID of one trial record (a JSON Lines line).
func sampleIDOf(t testing.TB, line string) string {
	t.Helper()
	var rec struct {
		ProtocolSection struct {
			IdentificationModule struct {
				NctID string `json:"nctId"`
			} `json:"identificationModule"`
		} `json:"protocolSection"`
	}
	if err := json.Unmarshal([]byte(line), &rec); err != nil {
		t.Fatal(err)
	}
	return rec.ProtocolSection.IdentificationModule.NctID
}

// firstColumn returns column 0 of the rows after the header.
func firstColumn(rows [][]string) []string {
	var ids []string
	for _, r := range rows[1:] {
		ids = append(ids, r[0])
	}
	return ids
}

// assertExactlyOnce checks that no input ID is in both final files or in one twice, and that the
// IDs in neither (not done yet) are exactly the run's remaining count in summary.json.
func assertExactlyOnce(t testing.TB, out string, ids []string) (succeeded, failed int) {
	t.Helper()
	seen := map[string]string{}
	for _, f := range []string{"final_results.csv", "final_failures.csv"} {
		for _, id := range firstColumn(readCSV(t, filepath.Join(out, f))) {
			if prev, ok := seen[id]; ok {
				t.Errorf("ID %s is in %s and %s", id, prev, f)
			}
			seen[id] = f
			if f == "final_results.csv" {
				succeeded++
			} else {
				failed++
			}
		}
	}
	// results.jsonl, when the run wrote one, holds each answered record exactly once.
	if data, err := os.ReadFile(filepath.Join(out, "results.jsonl")); err == nil {
		streamed := map[string]int{}
		idColumn := readCSV(t, filepath.Join(out, "final_results.csv"))[0][0]
		var streamedCost float64
		for _, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
			if len(line) == 0 {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal(line, &m); err != nil {
				t.Errorf("results.jsonl: a line that is not a JSON object: %q", line)
				continue
			}
			id, ok := m[idColumn].(string)
			if !ok {
				t.Errorf("results.jsonl: the ID %s is not a string: %q", idColumn, line)
			}
			for _, col := range []string{"input_tokens", "output_tokens", "cached_tokens", "attempts", "latency_ms"} {
				if _, ok := m[col].(float64); !ok {
					t.Errorf("results.jsonl: %s is not a JSON number: %q", col, line)
				}
			}
			c, _ := m["cost_usd"].(float64)
			streamedCost += c
			streamed[id]++
		}
		// The per-record costs sum to the summary's, to the cent, when every answer is streamed.
		var sum struct {
			Cost      *float64 `json:"estimated_cost_usd"`
			Succeeded int      `json:"succeeded"`
		}
		if b, err := os.ReadFile(filepath.Join(out, "summary.json")); err == nil && json.Unmarshal(b, &sum) == nil &&
			sum.Cost != nil && len(streamed) == sum.Succeeded && math.Abs(streamedCost-*sum.Cost) >= 0.005 {
			t.Errorf("results.jsonl's costs sum to $%.6f, summary.json says $%.6f", streamedCost, *sum.Cost)
		}
		for id, f := range seen {
			if f == "final_results.csv" && streamed[id] != 1 {
				t.Errorf("results.jsonl holds answered record %s %d times; want once", id, streamed[id])
			}
		}
		for id, n := range streamed {
			if seen[id] != "final_results.csv" {
				t.Errorf("results.jsonl holds %s (%d times), which is not in final_results.csv", id, n)
			}
		}
	}
	remaining := 0
	for _, id := range ids {
		if _, ok := seen[id]; !ok {
			remaining++
		}
	}
	if len(seen)+remaining != len(ids) {
		t.Errorf("final files hold %d IDs that are not in the input", len(seen)+remaining-len(ids))
	}
	var sum struct {
		Succeeded, Failed, Remaining int
	}
	if data, err := os.ReadFile(filepath.Join(out, "summary.json")); err == nil {
		if err := json.Unmarshal(data, &sum); err != nil {
			t.Fatal(err)
		}
		if sum.Succeeded != succeeded || sum.Failed != failed || sum.Remaining != remaining {
			t.Errorf("summary.json says %d succeeded, %d failed, %d remaining; the final files say %d, %d and %d",
				sum.Succeeded, sum.Failed, sum.Remaining, succeeded, failed, remaining)
		}
	} else if remaining > 0 {
		t.Errorf("%d IDs are in neither final file and there is no summary.json to count them", remaining)
	}
	return succeeded, failed
}

// snapshot records names, sizes and contents of every file under dir.
func snapshot(t testing.TB, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		b.WriteString(p + " " + info.Mode().String())
		if !info.IsDir() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b.Write(data)
		}
		b.WriteString("\n")
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return b.String()
}
