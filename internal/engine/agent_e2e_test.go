package engine_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/trialcat/trialcat/internal/fakeai"
	"github.com/trialcat/trialcat/internal/results"
	"github.com/trialcat/trialcat/internal/taxonomy"
)

// mcpProcs lists the PIDs of the running MCP example servers whose command line contains marker.
func mcpProcs(marker string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		argv := strings.Split(string(cmd), "\x00")
		if err == nil && filepath.Base(argv[0]) == "interventions-mcp" && strings.Contains(string(cmd), marker) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// An agent run with an MCP server: the server's tool is called and its answer reaches the model;
// final_results.csv carries exactly each record's accepted submit; the transcripts show the
// calls; a kill -9 of the coordinator takes the workers and their MCP servers along, and the
// rerun asks no answered record again.
func TestAgentRunWithMCPSurvivesKillAndResumes(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end agent test")
	}
	dir := t.TempDir()
	input, ids := replicate(t, dir, 2)
	var mu sync.Mutex
	mcpAnswers := map[string]string{}
	fake, url := startFake(t, fakeai.Config{Latency: fakeai.LatencyModel{Base: 25 * time.Millisecond}, Agent: fakeai.AgentConfig{
		ToolFirst: "lookup_intervention",
		OnToolResult: func(id, tool, content string) {
			if tool == "lookup_intervention" {
				mu.Lock()
				mcpAnswers[id] = content
				mu.Unlock()
			}
		},
	}})
	out := filepath.Join(dir, "out")
	env := []string{"OPENAI_API_KEY=" + testKey}
	mcp := filepath.Join(binDir, "interventions-mcp") + " --records " + sample
	args := []string{"--workers", "4", "--concurrency", "2", "--input", input, "--out", out, "--base-url", url, "--agent", "--mcp", mcp}
	cmd, logs := startBin(t, env, "coordinator", args...)
	waitFor(t, "40 answered rows", 90*time.Second, func() bool { return countRows(t, out) >= 40 })
	servers := mcpProcs(sample)
	if len(servers) == 0 {
		t.Fatalf("no MCP server running under the workers\n%s", tail(logs.String(), 20))
	}
	killAndWaitFor(t, cmd, "the workers' MCP servers to die with them", servers)
	rerunAsksNothingTwice(t, fake, out, env, args)
	ok, failed := assertExactlyOnce(t, out, ids)
	if ok != len(ids) || failed != 0 {
		t.Fatalf("%d succeeded, %d failed", ok, failed)
	}
	// Each row holds the arguments of the record's accepted submit call: the fake submits its
	// default answer for the submit tool's parameters, the run's strict schema.
	sch := taxonomy.MustSchema()
	var params map[string]any // the submit tool's parameters as the server saw them
	raw, _ := json.Marshal(sch.StrictJSON())
	if err := json.Unmarshal(raw, &params); err != nil {
		t.Fatal(err)
	}
	rows := readCSV(t, filepath.Join(out, "final_results.csv"))
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	for _, row := range rows[1:] {
		want := fakeai.DefaultAnswer(row[0], params)
		for _, f := range sch.Columns() {
			if got := row[col[f]]; got != want[f] {
				t.Errorf("%s: %s = %q, the accepted submit said %q", row[0], f, got, want[f])
			}
		}
		turns, _ := strconv.Atoi(row[col[results.ColTurns]])
		calls, _ := results.ParseToolCalls(row[col[results.ColToolCalls]])
		if turns < 3 || calls["lookup_intervention"] < 1 || calls["submit_categorization"] != 1 {
			t.Errorf("%s: %d turns, calls %v", row[0], turns, calls)
		}
	}
	mu.Lock()
	for _, id := range ids[:10] {
		if a := mcpAnswers[id]; !strings.Contains(a, "studies as") && !strings.Contains(a, "No study") && !strings.Contains(a, "similar names") {
			t.Errorf("%s: the MCP server's answer did not reach the model: %q", id, a)
		}
	}
	mu.Unlock()
	// The transcripts show each turn's calls.
	calls := map[string]int{}
	tfiles, _ := filepath.Glob(filepath.Join(out, "transcripts", "worker_*.jsonl"))
	for _, f := range tfiles {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			var line struct {
				Calls []struct {
					Name        string `json:"name"`
					ResultBytes int    `json:"result_bytes"`
				} `json:"calls"`
			}
			if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
				t.Errorf("%s: %v: %s", f, err, sc.Text())
			}
			for _, c := range line.Calls {
				calls[c.Name]++
			}
		}
		fh.Close()
	}
	if calls["lookup_intervention"] < len(ids) || calls["read_section"] < len(ids) || calls["submit_categorization"] < len(ids) {
		t.Errorf("transcripts hold calls %v for %d records", calls, len(ids))
	}
}

// A hostile model (broken calls in 10% of turns, 5% of records never submitting): every record
// ends, none uses more requests than the turn limit plus its one-shot fallback, the tokens in
// summary.json are what the server counted, and --rpm holds across turns.
func TestAgentRunWithHostileModel(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end agent test")
	}
	fake, url := startFake(t, fakeai.Config{Seed: 7, Latency: fakeai.LatencyModel{Base: 10 * time.Millisecond},
		Agent: fakeai.AgentConfig{RateBrokenArgs: 0.05, RateUnknownTool: 0.03, RateText: 0.02, RateSchemaBreak: 0.05, RateNeverSubmit: 0.05}})
	out := filepath.Join(t.TempDir(), "out")
	env := []string{"OPENAI_API_KEY=" + testKey}
	const turns, rpm = 5, 1800
	res := runBin(t, env, "coordinator", "--workers", "4", "--concurrency", "4", "--input", sample, "--out", out,
		"--base-url", url, "--agent", "--agent-max-turns", strconv.Itoa(turns), "--rpm", strconv.Itoa(rpm))
	if res.code != 0 {
		t.Fatalf("exit %d\n%s", res.code, tail(res.stderr, 30))
	}
	ids := sampleIDs(t, sample)
	ok, failed := assertExactlyOnce(t, out, ids)
	if ok != len(ids) || failed != 0 {
		t.Errorf("%d succeeded, %d failed", ok, failed)
	}
	st := fake.Stats()
	for id, n := range st.PerID {
		if n > turns+1 {
			t.Errorf("%s: %d requests, over %d turns and one fallback", id, n, turns)
		}
	}
	sum := readSummary(t, out)
	if in, outTok := int64(sum["input_tokens"].(float64)), int64(sum["output_tokens"].(float64)); in != st.PromptTokens || outTok != st.CompletionTokens {
		t.Errorf("summary tokens %d/%d, the server counted %d/%d", in, outTok, st.PromptTokens, st.CompletionTokens)
	}
	agent, _ := sum["agent"].(map[string]any)
	if agent == nil || agent["fallbacks"].(float64) < 1 || agent["records"].(float64) != float64(len(ids)) {
		t.Errorf("summary agent = %v", agent)
	}
	if !strings.Contains(res.stdout, "fell back to the one-shot prompt") {
		t.Errorf("the summary does not say how the loops went:\n%s", res.stdout)
	}
	// An agent run and a one-shot run of the same records compare.
	one := filepath.Join(t.TempDir(), "one")
	if r := runBin(t, env, "coordinator", "--workers", "4", "--input", sample, "--out", one, "--base-url", url); r.code != 0 {
		t.Fatalf("one-shot run: exit %d\n%s", r.code, tail(r.stderr, 20))
	}
	if r := runBin(t, nil, "coordinator", "compare", out, one); r.code != 0 || !strings.Contains(r.stdout, fmt.Sprintf("records in both: %d", len(ids))) {
		t.Errorf("compare of the agent run and the one-shot run: exit %d\n%s%s", r.code, r.stdout, tail(r.stderr, 10))
	}
	// The limit paces every turn (counted before the one-shot run above): over the run, requests reached the server no faster than it.
	acc := st.Accepted
	if len(acc) < 2*len(ids) {
		t.Fatalf("only %d requests", len(acc))
	}
	span := acc[len(acc)-1].Sub(acc[0]).Seconds()
	if rate := float64(len(acc)-5) / span; rate > float64(rpm)/60*1.05 {
		t.Errorf("%d requests in %.1fs: %.1f/s, over --rpm %d (%.1f/s)", len(acc), span, rate, rpm, float64(rpm)/60)
	}
}

// An MCP server killed mid-run fails the records that call it, clearly (tool_server_failed, exit
// 1), and the run goes on and ends; the rerun starts the servers again and answers them.
func TestAgentRunWhoseMCPServerDies(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end agent test")
	}
	dir := t.TempDir()
	input, ids := replicate(t, dir, 1)
	records := filepath.Join(dir, "studies-for-mcp.jsonl")
	data, err := os.ReadFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(records, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, url := startFake(t, fakeai.Config{Latency: fakeai.LatencyModel{Base: 30 * time.Millisecond}, Agent: fakeai.AgentConfig{ToolFirst: "lookup_intervention"}})
	out := filepath.Join(dir, "out")
	env := []string{"OPENAI_API_KEY=" + testKey}
	args := []string{"--workers", "2", "--input", input, "--out", out, "--base-url", url, "--agent",
		"--mcp", filepath.Join(binDir, "interventions-mcp") + " --records " + records}
	cmd, logs := startBin(t, env, "coordinator", args...)
	waitFor(t, "10 answered rows", 90*time.Second, func() bool { return countRows(t, out) >= 10 })
	for _, p := range mcpProcs(records) {
		_ = killPID(p)
	}
	if code := exitCodeOf(cmd.Wait()); code != 1 {
		t.Fatalf("exit %d, want 1 (records failed)\n%s", code, tail(logs.String(), 30))
	}
	fails := readCSV(t, filepath.Join(out, "final_failures.csv"))
	if len(fails) < 2 {
		t.Fatalf("no failures after the MCP server was killed\n%s", tail(logs.String(), 20))
	}
	for _, f := range fails[1:] {
		if f[1] != "tool_server_failed" || !strings.Contains(f[2], "interventions-mcp exited") {
			t.Errorf("failure %q", f)
		}
	}
	res := runBin(t, env, "coordinator", args...)
	if res.code != 0 {
		t.Fatalf("rerun: exit %d\n%s", res.code, tail(res.stderr, 30))
	}
	if ok, failed := assertExactlyOnce(t, out, ids); ok != len(ids) || failed != 0 {
		t.Errorf("after the rerun: %d succeeded, %d failed", ok, failed)
	}
}

func killPID(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }
