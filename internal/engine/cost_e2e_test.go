package engine_test

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trialcat/trialcat/internal/fakeai"
	"github.com/trialcat/trialcat/internal/modelinfo"
	"github.com/trialcat/trialcat/internal/results"
)

// costSummary is the part of summary.json about tokens and cost.
type costSummary struct {
	Succeeded    int64              `json:"succeeded"`
	InputTokens  int64              `json:"input_tokens"`
	CachedTokens int64              `json:"cached_input_tokens"`
	OutputTokens int64              `json:"output_tokens"`
	CachedShare  float64            `json:"cached_share"`
	Cost         *float64           `json:"estimated_cost_usd"`
	PerRecord    float64            `json:"cost_per_record_usd"`
	ByTier       map[string]float64 `json:"cost_by_tier"`
	Tiers        map[string]int64   `json:"service_tiers"`
	RateLimited  int64              `json:"rate_limited_429s"`
	Flex         *struct {
		Refusals int64 `json:"refusals"`
		FellBack int64 `json:"fell_back_to_default"`
	} `json:"flex"`
}

func readCostSummary(t *testing.T, out string) costSummary {
	t.Helper()
	var s costSummary
	b, err := os.ReadFile(filepath.Join(out, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &s); err != nil || s.Cost == nil {
		t.Fatalf("summary.json: %v (cost %v)", err, s.Cost)
	}
	return s
}

// rowsOf reads final_results.csv's rows.
func rowsOf(t *testing.T, out string) []results.Row {
	t.Helper()
	var rows []results.Row
	if _, err := results.ReadFile(filepath.Join(out, "final_results.csv"), func(_ results.Layout, r results.Row) error {
		rows = append(rows, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return rows
}

// streamedCost sums results.jsonl's cost_usd, which must be JSON numbers.
func streamedCost(t *testing.T, out string) (float64, int) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(out, "results.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		c, ok := m["cost_usd"].(float64)
		if !ok {
			t.Fatalf("cost_usd is not a number: %s", line)
		}
		sum += c
		n++
	}
	return sum, n
}

// Against a server that caches prefixes as OpenAI does, the run's cached tokens are what the
// server reported, the cost prices them at the cached rate, the per-record costs sum to the
// summary's to the cent, and every request carries the one prompt_cache_key derived from the run.
func TestPromptCacheIsCountedAndPricedAtTheCachedRate(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end cost test")
	}
	fake, url := startFake(t, fakeai.Config{Seed: 3, PromptCache: true, Latency: fakeai.LatencyModel{Base: 2 * time.Millisecond}})
	out := filepath.Join(t.TempDir(), "out")
	if r := runBin(t, []string{"OPENAI_API_KEY=" + testKey}, "coordinator", "--workers", "2", "--concurrency", "2",
		"--input", sample, "--out", out, "--base-url", url); r.code != 0 {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, tail(r.stderr, 20))
	}
	st := fake.Stats()
	sum := readCostSummary(t, out)
	if st.CachedTokens == 0 || sum.CachedTokens != st.CachedTokens || sum.InputTokens != st.PromptTokens {
		t.Errorf("summary: %d cached of %d input tokens; the server reported %d cached of %d", sum.CachedTokens, sum.InputTokens, st.CachedTokens, st.PromptTokens)
	}
	if want := math.Round(float64(sum.CachedTokens)/float64(sum.InputTokens)*1000) / 1000; sum.CachedShare != want || want < 0.3 {
		t.Errorf("cached_share %v, want %v (at least 0.3: the static prefix is most of each prompt)", sum.CachedShare, want)
	}
	prices := modelinfo.Prices()
	var atCached, uncached float64
	for _, r := range rowsOf(t, out) {
		c, _ := prices.Cost(r.Model, r.InputTokens, r.CachedTokens, r.OutputTokens)
		u, _ := prices.Cost(r.Model, r.InputTokens, 0, r.OutputTokens)
		if math.Abs(c-r.CostUSD) > 1e-6 {
			t.Errorf("%s: cost_usd %.6f, want %.6f at the cached rate for %d of %d tokens", r.ID, r.CostUSD, c, r.CachedTokens, r.InputTokens)
		}
		atCached, uncached = atCached+c, uncached+u
	}
	if math.Abs(atCached-*sum.Cost) >= 0.005 || atCached >= uncached {
		t.Errorf("summary cost $%.6f; the rows at the cached rate sum to $%.6f (uncached $%.6f)", *sum.Cost, atCached, uncached)
	}
	streamed, n := streamedCost(t, out)
	if int64(n) != sum.Succeeded || math.Abs(streamed-*sum.Cost) >= 0.005 {
		t.Errorf("results.jsonl: %d lines summing to $%.6f; summary: %d answered, $%.6f", n, streamed, sum.Succeeded, *sum.Cost)
	}
	if math.Abs(sum.PerRecord-*sum.Cost/float64(sum.Succeeded)) > 1e-9 || sum.PerRecord != math.Round(sum.PerRecord*1e9)/1e9 {
		t.Errorf("cost_per_record_usd %v, want %v", sum.PerRecord, *sum.Cost/float64(sum.Succeeded))
	}
	if len(st.CacheKeys) != 1 {
		t.Fatalf("prompt_cache_key by requests %v, want one key on every request", st.CacheKeys)
	}
	for k, n := range st.CacheKeys {
		if !strings.HasPrefix(k, "trialcat-") || n != st.Requests {
			t.Errorf("prompt_cache_key %q on %d of %d requests", k, n, st.Requests)
		}
	}
	if st.ServiceTiers[""] != st.Requests {
		t.Errorf("service_tier sent %v without --service-tier, want none", st.ServiceTiers)
	}
}

// --service-tier, --prompt-cache-key and --cache-retention reach the server, and each answer is
// priced at its tier's rate.
func TestServiceTierAndCacheSettingsReachTheServer(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end cost test")
	}
	fake, url := startFake(t, fakeai.Config{Seed: 4, PromptCache: true})
	out := filepath.Join(t.TempDir(), "out")
	if r := runBin(t, []string{"OPENAI_API_KEY=" + testKey}, "coordinator", "--workers", "2", "--input", sample, "--out", out,
		"--base-url", url, "--service-tier", "priority", "--prompt-cache-key", "group-a", "--cache-retention", "24h"); r.code != 0 {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, tail(r.stderr, 20))
	}
	st := fake.Stats()
	if st.ServiceTiers["priority"] != st.Requests || st.CacheKeys["group-a"] != st.Requests || st.CacheRetentions["24h"] != st.Requests {
		t.Errorf("%d requests; tiers %v, keys %v, retentions %v", st.Requests, st.ServiceTiers, st.CacheKeys, st.CacheRetentions)
	}
	prices := modelinfo.Prices()
	for _, r := range rowsOf(t, out) {
		want, ok := prices.CostAt(r.Model, r.ServiceTier, r.InputTokens, r.CachedTokens, r.OutputTokens)
		if r.ServiceTier != "priority" || !ok || math.Abs(want-r.CostUSD) > 1e-6 {
			t.Fatalf("%s: tier %q cost %.6f, want priority at $%.6f", r.ID, r.ServiceTier, r.CostUSD, want)
		}
	}
	if sum := readCostSummary(t, out); sum.Tiers["priority"] != sum.Succeeded || len(sum.ByTier) != 1 {
		t.Errorf("summary tiers %v, cost by tier %v", sum.Tiers, sum.ByTier)
	}
}

// A flex run whose server refuses 30% of flex requests finishes; a request refused
// --flex-fallback times goes on the default tier, and is counted and priced there.
func TestFlexRefusalsFallBackToTheDefaultTier(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end cost test")
	}
	fake, url := startFake(t, fakeai.Config{Seed: 8, FlexUnavailable: 0.3, PromptCache: true})
	out := filepath.Join(t.TempDir(), "out")
	if r := runBin(t, []string{"OPENAI_API_KEY=" + testKey}, "coordinator", "--workers", "2", "--concurrency", "4",
		"--input", sample, "--out", out, "--base-url", url, "--service-tier", "flex", "--flex-fallback", "2"); r.code != 0 {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, tail(r.stderr, 20))
	}
	st := fake.Stats()
	sum := readCostSummary(t, out)
	if sum.Succeeded != 100 || sum.Flex == nil {
		t.Fatalf("succeeded %d, flex %+v", sum.Succeeded, sum.Flex)
	}
	if refused := int64(st.Answers[fakeai.KindFlexUnavailable]); refused == 0 || sum.Flex.Refusals != refused {
		t.Errorf("summary counts %d flex refusals; the server refused %d", sum.Flex.Refusals, refused)
	}
	if sum.RateLimited != 0 {
		t.Errorf("summary counts %d 429s: flex refusals are not the key's rate limit", sum.RateLimited)
	}
	prices := modelinfo.Prices()
	tiers := map[string]int64{}
	for _, r := range rowsOf(t, out) {
		tiers[r.ServiceTier]++
		want, _ := prices.CostAt(r.Model, r.ServiceTier, r.InputTokens, r.CachedTokens, r.OutputTokens)
		if math.Abs(want-r.CostUSD) > 1e-6 {
			t.Errorf("%s on %s: cost %.6f, want %.6f", r.ID, r.ServiceTier, r.CostUSD, want)
		}
	}
	if tiers["default"] == 0 || tiers["flex"] == 0 || tiers["default"]+tiers["flex"] != 100 || sum.Flex.FellBack != tiers["default"] {
		t.Errorf("rows by tier %v; summary fell back %d", tiers, sum.Flex.FellBack)
	}
	if st.ServiceTiers["default"] != int(tiers["default"]) {
		t.Errorf("the server saw %d default-tier requests; %d records fell back", st.ServiceTiers["default"], tiers["default"])
	}
	flexRate, _ := prices.CostAt("gpt-5-mini", "flex", 1_000_000, 0, 0)
	stdRate, _ := prices.Cost("gpt-5-mini", 1_000_000, 0, 0)
	if flexRate >= stdRate {
		t.Errorf("flex input rate $%v is not below the default tier's $%v", flexRate, stdRate)
	}
}

// shellWords splits a command line printed with POSIX single quotes.
func shellWords(t *testing.T, line string) []string {
	t.Helper()
	var words []string
	var cur strings.Builder
	in, started := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '\'':
			in, started = !in, true
		case c == ' ' && !in:
			if started {
				words = append(words, cur.String())
				cur.Reset()
				started = false
			}
		default:
			cur.WriteByte(c)
			started = true
		}
	}
	if in {
		t.Fatalf("unbalanced quote in %q", line)
	}
	if started {
		words = append(words, cur.String())
	}
	return words
}

// plan lists the ways with cost and time, picks the cheapest within the deadline, and its
// command line runs as printed; no way within the deadline is exit 1, no deadline exit 2.
func TestPlanPrintsACommandThatRuns(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end plan test")
	}
	fake, url := startFake(t, fakeai.Config{Seed: 9, PromptCache: true})
	dir := t.TempDir()
	out := filepath.Join(dir, "out dir") // a path the printed line must quote
	env := []string{"OPENAI_API_KEY=" + testKey}
	r := runBin(t, env, "coordinator", "plan", "--input", sample, "--out", out, "--base-url", url, "--workers", "2",
		"--deadline", "6h", "--latency", "50ms", "--rpm", "3000")
	if r.code != 0 {
		t.Fatalf("plan: exit %d\n%s%s", r.code, r.stdout, tail(r.stderr, 20))
	}
	for _, want := range []string{"live, default tier", "live, flex tier", "Batch API", "within 24h", "cheapest within 6h: live, flex tier"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("plan output lacks %q:\n%s", want, r.stdout)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("plan wrote the run folder; it must not touch it")
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	words := shellWords(t, strings.TrimSpace(lines[len(lines)-1]))
	if words[0] != "coordinator" {
		t.Fatalf("the last line is not a command line: %q", lines[len(lines)-1])
	}
	run := runBin(t, env, "coordinator", words[1:]...)
	if run.code != 0 {
		t.Fatalf("the printed command %q: exit %d\n%s%s", words, run.code, run.stdout, tail(run.stderr, 20))
	}
	if st := fake.Stats(); st.ServiceTiers["flex"] == 0 {
		t.Errorf("the planned run sent no flex requests: %v", st.ServiceTiers)
	}
	if n := len(rowsOf(t, out)); n != 100 {
		t.Errorf("the planned run answered %d records, want 100", n)
	}
	if r := runBin(t, env, "coordinator", "plan", "--input", sample, "--deadline", "1s", "--latency", "2s", "--workers", "1"); r.code != 1 || !strings.Contains(r.stdout, "no way meets 1s") {
		t.Errorf("a deadline nothing meets: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runBin(t, env, "coordinator", "plan", "--input", sample); r.code != 2 || !strings.Contains(r.stderr, "--deadline is required") {
		t.Errorf("no --deadline: exit %d\n%s", r.code, r.stderr)
	}
	if r := runBin(t, env, "coordinator", "plan", "--input", sample, "--deadline", "-5m"); r.code != 2 || !strings.Contains(r.stderr, "positive") {
		t.Errorf("a negative --deadline: exit %d\n%s", r.code, r.stderr)
	}
	// --votes multiplies every way's requests, cost and time.
	one := runBin(t, env, "coordinator", "plan", "--input", sample, "--deadline", "6h", "--latency", "50ms")
	three := runBin(t, env, "coordinator", "plan", "--input", sample, "--deadline", "6h", "--latency", "50ms", "--votes", "3")
	cost := func(out string) string {
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "live, default tier") {
				return strings.Fields(line)[len(strings.Fields(line))-3]
			}
		}
		return ""
	}
	var c1, c3 float64
	fmt.Sscanf(strings.TrimPrefix(cost(one.stdout), "$"), "%f", &c1)
	fmt.Sscanf(strings.TrimPrefix(cost(three.stdout), "$"), "%f", &c3)
	if c1 <= 0 || math.Abs(c3-3*c1) > 0.0002 {
		t.Errorf("the default tier costs $%v with one vote and $%v with three; want three times:\n%s\n%s", c1, c3, one.stdout, three.stdout)
	}
}
