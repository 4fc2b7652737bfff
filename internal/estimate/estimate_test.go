package estimate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/trialcat/trialcat/internal/exitcode"
	"github.com/trialcat/trialcat/internal/modelinfo"
	"github.com/trialcat/trialcat/internal/prompt"
	"github.com/trialcat/trialcat/internal/taxonomy"
	"github.com/trialcat/trialcat/internal/tokens"
)

// TestRunCountsRealPrompts checks the counts against the default prompt rendered for each of the
// 100 real records and counted one by one.
func TestRunCountsRealPrompts(t *testing.T) {
	rep := runOK(t, base())
	all := renderAll(t, trials, defaultTemplate(t))
	if rep.Records != int64(len(all)) || rep.Records != 100 {
		t.Fatalf("Records = %d; want %d (the sample has 100)", rep.Records, len(all))
	}
	// Counted here one message at a time: the system message once, as it is the same for all.
	system := tokens.Count(all[0].msgs.System)
	framing := 2*tokens.PerMessage + tokens.ReplyPriming
	var want int64
	var per []int
	maxTok, maxID := -1, ""
	for _, r := range all {
		if r.msgs.System != all[0].msgs.System {
			t.Fatalf("record %s: the default system message is not static", r.id)
		}
		n := system + tokens.Count(r.msgs.User) + framing
		per = append(per, n)
		want += int64(n)
		if n > maxTok {
			maxTok, maxID = n, r.id
		}
	}
	if rep.PromptTokens != want {
		t.Errorf("PromptTokens = %d; want %d, the sum over the rendered prompts of their tokens and framing", rep.PromptTokens, want)
	}
	if first := all[0].msgs; per[0] != tokens.Estimate(first.System, first.User, 0) {
		t.Errorf("first record: %d tokens; tokens.Estimate says %d", per[0], tokens.Estimate(first.System, first.User, 0))
	}
	if rep.PromptMean < 1000 || rep.PromptMean > 10000 {
		t.Errorf("PromptMean = %.0f; a real trial with the default prompt should take between 1,000 and 10,000 tokens", rep.PromptMean)
	}
	slices.Sort(per)
	if rep.PromptMax != maxTok || rep.PromptMaxID != maxID {
		t.Errorf("max = %d (%s); want %d (%s)", rep.PromptMax, rep.PromptMaxID, maxTok, maxID)
	}
	if rep.PromptP50 != per[49] || rep.PromptP95 != per[94] {
		t.Errorf("p50, p95 = %d, %d; want %d, %d (nearest rank)", rep.PromptP50, rep.PromptP95, per[49], per[94])
	}
	if !rep.SystemStatic || rep.SystemTokens != tokens.Count(all[0].msgs.System) {
		t.Errorf("system = %d static %v; want %d, static", rep.SystemTokens, rep.SystemStatic, tokens.Count(all[0].msgs.System))
	}
	if rep.SchemaTokens < 100 || rep.SchemaTokens > 2000 {
		t.Errorf("SchemaTokens = %d; want the strict default schema's few hundred tokens", rep.SchemaTokens)
	}
	if rep.InputTokens != rep.PromptTokens+rep.Records*int64(rep.SchemaTokens) {
		t.Errorf("InputTokens = %d; want prompts %d + 100 × schema %d", rep.InputTokens, rep.PromptTokens, rep.SchemaTokens)
	}
}

// TestRunTemplateOption checks that the run's own template is the one counted.
func TestRunTemplateOption(t *testing.T) {
	tmpl, err := prompt.Parse("short.tmpl", `{{define "system"}}Say yes.{{end}}{{define "user"}}{{.ID}}{{end}}`)
	if err != nil {
		t.Fatal(err)
	}
	opts := small(t)
	opts.Template = tmpl
	rep := runOK(t, opts)
	var want int64
	for _, r := range renderAll(t, opts.Input, tmpl) {
		want += int64(tokens.Estimate(r.msgs.System, r.msgs.User, 0))
	}
	if rep.PromptTokens != want {
		t.Errorf("PromptTokens = %d; want %d from the given template", rep.PromptTokens, want)
	}
	if rep.CachedTokens != 0 || rep.CachedPrefix != 0 {
		t.Errorf("cached = %d; a short system message cannot be cached", rep.CachedTokens)
	}
}

func TestRunCSV(t *testing.T) {
	opts := base()
	opts.Input = filepath.Join("testdata", "flat.csv")
	rep := runOK(t, opts)
	all := renderAll(t, opts.Input, defaultTemplate(t))
	if rep.Records != 3 || len(all) != 3 {
		t.Fatalf("Records = %d; want the 3 rows of flat.csv", rep.Records)
	}
	var want int64
	for _, r := range all {
		want += int64(tokens.Estimate(r.msgs.System, r.msgs.User, 0))
	}
	if rep.PromptTokens != want {
		t.Errorf("PromptTokens = %d; want %d", rep.PromptTokens, want)
	}
	if !strings.Contains(all[0].msgs.User, "Metformin") {
		t.Errorf("the CSV columns did not reach the prompt: %q", all[0].msgs.User)
	}
}

func TestRunDedupe(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dups.jsonl")
	data := `{"nct_id":"A","title":"one"}` + "\n" + `{"nct_id":"B","title":"two"}` + "\n" + `{"nct_id":"A","title":"one again"}` + "\n"
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		dedupe bool
		want   int64
	}{{false, 3}, {true, 2}} {
		opts := base()
		opts.Input, opts.Dedupe = path, tt.dedupe
		if rep := runOK(t, opts); rep.Records != tt.want {
			t.Errorf("Dedupe %v: Records = %d; want %d", tt.dedupe, rep.Records, tt.want)
		}
	}
}

// TestRunErrors checks that mistakes in flags, input and template are usage errors (exit 2)
// that say where.
func TestRunErrors(t *testing.T) {
	missing, err := os.ReadFile(filepath.Join("testdata", "missing_field.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := prompt.Parse("missing_field.tmpl", string(missing))
	if err != nil {
		t.Fatal(err)
	}
	// The first record without an acronym, in input order.
	firstMissing := firstWithoutAcronym(t)

	tests := []struct {
		name   string
		change func(*Options)
		want   []string
		is     error
	}{
		{"no input", func(o *Options) { o.Input = "" }, []string{"--input is required"}, nil},
		{"no model", func(o *Options) { o.Model = "" }, []string{"--model"}, nil},
		{"negative latency", func(o *Options) { o.Latency = -1 }, []string{"--latency"}, nil},
		{"bad effort", func(o *Options) { o.ReasoningEffort = "max" }, []string{`--reasoning-effort "max"`, "medium"}, nil},
		{"input missing", func(o *Options) { o.Input = filepath.Join(t.TempDir(), "nope.json") }, []string{"nope.json"}, nil},
		{"missing field", func(o *Options) { o.Template = tmpl }, []string{firstMissing, "protocolSection.identificationModule.acronym", "{{get"}, prompt.ErrMissingField},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := base()
			tt.change(&opts)
			rep, err := Run(context.Background(), opts)
			if err == nil {
				t.Fatalf("Run succeeded (%d records); want an error", rep.Records)
			}
			if !errors.Is(err, exitcode.ErrUsage) {
				t.Errorf("error %v does not wrap exitcode.ErrUsage", err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v does not wrap %v", err, tt.is)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// firstWithoutAcronym returns the ID of the first real record that has no acronym.
func firstWithoutAcronym(t testing.TB) string {
	t.Helper()
	tmpl, err := prompt.Parse("acronym", `{{if eq (printf "%v" (get "protocolSection.identificationModule.acronym")) ""}}MISSING{{end}}`)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range renderAll(t, trials, tmpl) {
		if r.msgs.User == "MISSING" {
			return r.id
		}
	}
	t.Fatal("every record has an acronym")
	return ""
}

func TestRunCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Run(ctx, base())
	if exitcode.Code(err) != exitcode.Interrupted {
		t.Errorf("Run on a canceled context = %v (exit %d); want an interruption", err, exitcode.Code(err))
	}
}

// TestCostsMatchPriceTable checks every model's cost against modelinfo.PriceTable.Cost and, for a
// made-up model, against the formula written out.
func TestCostsMatchPriceTable(t *testing.T) {
	tab := modelinfo.Prices()
	tab.Rates["test-model"] = modelinfo.Rate{Input: 3, CachedInput: 0.5, Output: 7}
	opts := small(t)
	opts.Prices, opts.Workers = tab, 2
	rep := runOK(t, opts)
	if rep.Costs[0].Model != "gpt-5-mini" {
		t.Fatalf("Costs[0] = %s; want the run's model first", rep.Costs[0].Model)
	}
	if rep.CachedTokens == 0 {
		t.Fatal("no cached tokens: the default system message should be long enough to cache")
	}
	var models []string
	for _, c := range rep.Costs {
		models = append(models, c.Model)
		want, known := tab.Cost(c.Model, rep.InputTokens, rep.CachedTokens, c.OutputTokens)
		if c.Known != known || math.Abs(c.USD-want) > 1e-12 {
			t.Errorf("%s: USD = %v, %v; want modelinfo.PriceTable.Cost = %v, %v", c.Model, c.USD, c.Known, want, known)
		}
		if c.OutputTokens != int64(c.Output.PerRequest)*rep.Records {
			t.Errorf("%s: OutputTokens = %d; want %d per request × %d", c.Model, c.OutputTokens, c.Output.PerRequest, rep.Records)
		}
		if c.Model == "test-model" {
			hand := (float64(rep.InputTokens-rep.CachedTokens)*3 + float64(rep.CachedTokens)*0.5 + float64(c.OutputTokens)*7) / 1e6
			if math.Abs(c.USD-hand) > 1e-12 {
				t.Errorf("test-model: USD = %v; want %v", c.USD, hand)
			}
		}
	}
	var wantModels []string
	for m := range tab.Rates {
		if m != "offline" {
			wantModels = append(wantModels, m)
		}
	}
	slices.Sort(models)
	slices.Sort(wantModels)
	if !slices.Equal(models, wantModels) {
		t.Errorf("compared models %v; want every priced model but offline %v", models, wantModels)
	}
	if rep.OutputTokens != rep.Costs[0].OutputTokens || rep.Output != rep.Costs[0].Output {
		t.Errorf("report output %d differs from the run model's %d", rep.OutputTokens, rep.Costs[0].OutputTokens)
	}
}

func TestUnknownModelPrice(t *testing.T) {
	opts := small(t)
	opts.Model = "Qwen/Qwen2.5-7B-Instruct"
	rep := runOK(t, opts)
	if c := rep.Costs[0]; c.Known || c.USD != 0 || c.ContextWindow != 0 || c.TooLong != 0 {
		t.Errorf("unknown model cost = %+v; want unknown, no window", c)
	}
}

func TestTooLong(t *testing.T) {
	// gpt-4's window is 8,192 tokens: a record of about 10,000 tokens cannot fit, one of a few
	// can; every priced model has a window of 128,000 tokens or more.
	dir := t.TempDir()
	path := filepath.Join(dir, "long.jsonl")
	long := strings.Repeat("lorem ipsum dolor sit amet ", 2000)
	data := fmt.Sprintf(`{"nct_id":"LONG","text":%q}`+"\n"+`{"nct_id":"SHORT","text":"short"}`+"\n", long)
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	tmpl, err := prompt.Parse("text.tmpl", `{{define "system"}}Categorize.{{end}}{{define "user"}}{{field "text"}}{{end}}`)
	if err != nil {
		t.Fatal(err)
	}
	opts := base()
	opts.Input, opts.Template, opts.Model = path, tmpl, "gpt-4"
	rep := runOK(t, opts)
	if rep.PromptMax < 8192 || rep.PromptMaxID != "LONG" {
		t.Fatalf("max prompt = %d (%s); the test needs LONG above 8,192 tokens", rep.PromptMax, rep.PromptMaxID)
	}
	for _, c := range rep.Costs {
		want := int64(0)
		if c.ContextWindow > 0 && c.ContextWindow < rep.PromptMax+rep.SchemaTokens+c.Output.PerRequest {
			want = 1
		}
		if c.TooLong != want {
			t.Errorf("%s (window %d): TooLong = %d; want %d", c.Model, c.ContextWindow, c.TooLong, want)
		}
	}
	if rep.Costs[0].TooLong != 1 {
		t.Errorf("gpt-4 TooLong = %d; want 1", rep.Costs[0].TooLong)
	}
}

func TestCachedPrefix(t *testing.T) {
	tests := []struct {
		name           string
		schema, system int
		static         bool
		records        int64
		inFlight       int
		wantPrefix     int
		wantRequests   int64
	}{
		{"under 1024", 300, 700, true, 100, 10, 0, 0},
		{"exactly 1024", 24, 1000, true, 100, 10, 1024, 90},
		{"rounded down to 128", 430, 1335, true, 100, 20, 1664, 80},
		{"not static", 430, 1335, false, 100, 20, 0, 0},
		{"no system message", 2000, 0, true, 100, 20, 0, 0},
		{"all in the first wave", 430, 1335, true, 20, 20, 1664, 0},
	}
	for _, tt := range tests {
		prefix, requests := cached(tt.schema, tt.system, tt.static, tt.records, tt.inFlight)
		if prefix != tt.wantPrefix || requests != tt.wantRequests {
			t.Errorf("%s: cached = %d tokens on %d requests; want %d on %d", tt.name, prefix, requests, tt.wantPrefix, tt.wantRequests)
		}
	}
}

// TestRunRetainsOneInt32PerRecord streams 4 MB of records and checks that, once they are
// counted, the heap holds little more than an int32 per record.
func TestRunRetainsOneInt32PerRecord(t *testing.T) {
	const n, pad = 1000, 4000
	path := filepath.Join(t.TempDir(), "big.jsonl")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	padding := strings.Repeat("x", pad)
	for i := range n {
		fmt.Fprintf(f, `{"nct_id":"N%06d","title":"trial %d","pad":%q}`+"\n", i, i, padding)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	tmpl, err := prompt.Parse("small.tmpl", `{{define "system"}}Categorize.{{end}}{{define "user"}}{{.ID}} {{field "title"}} {{truncate 20 (field "pad")}}{{end}}`)
	if err != nil {
		t.Fatal(err)
	}
	opts := base()
	opts.Input, opts.Template = path, tmpl
	tokens.Count("warm up the encoder") // built once per process, not per run

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	p, err := countPrompts(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if len(p.counts) != n {
		t.Fatalf("counted %d records; want %d", len(p.counts), n)
	}
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	// The counts slice (with append's slack) and a little else; the records are 4 MB.
	if limit := int64(2*4*n + 1<<20); grown > limit {
		t.Errorf("heap grew by %d bytes while holding the counts of %d records; want under %d (records must not be kept)", grown, n, limit)
	}
	runtime.KeepAlive(p)
}

func TestRunDefaultsToEmbeddedTemplateAndSchema(t *testing.T) {
	opts := small(t)
	withDefaults := runOK(t, opts)
	opts.Template, opts.Schema, opts.Prices = defaultTemplate(t), taxonomy.MustSchema(), modelinfo.Prices()
	explicit := runOK(t, opts)
	if withDefaults.InputTokens != explicit.InputTokens || withDefaults.OutputTokens != explicit.OutputTokens {
		t.Errorf("defaults give %d/%d tokens; the embedded template and schema give %d/%d",
			withDefaults.InputTokens, withDefaults.OutputTokens, explicit.InputTokens, explicit.OutputTokens)
	}
}

// TestRunReportsFirstFailingRecord checks that the record named is the first in input order
// that the template cannot render, however the records were scheduled.
func TestRunReportsFirstFailingRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "some_missing.jsonl")
	var b strings.Builder
	for i := range 300 {
		if i%7 == 5 {
			fmt.Fprintf(&b, `{"nct_id":"R%03d"}`+"\n", i)
			continue
		}
		fmt.Fprintf(&b, `{"nct_id":"R%03d","x":"value %d"}`+"\n", i, i)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	tmpl, err := prompt.Parse("x.tmpl", `{{define "user"}}{{.ID}} {{field "x"}}{{end}}`)
	if err != nil {
		t.Fatal(err)
	}
	opts := base()
	opts.Input, opts.Template = path, tmpl
	for range 5 {
		_, err := Run(context.Background(), opts)
		if !errors.Is(err, prompt.ErrMissingField) || !strings.Contains(err.Error(), "record 5: record R005:") {
			t.Fatalf("Run = %v; want the missing field of record 5 (R005), the first without x", err)
		}
	}
}

// With --hedge the estimate bounds the copies and their cost, and says so.
func TestHedgeCost(t *testing.T) {
	opts := small(t)
	opts.Hedge = 10
	rep := runOK(t, opts)
	if want := int64(float64(rep.Records) * 0.1); rep.HedgeRequests != want {
		t.Errorf("HedgeRequests = %d; want 10%% of %d records", rep.HedgeRequests, rep.Records)
	}
	if want := rep.Costs[0].USD / float64(rep.Records) * float64(rep.HedgeRequests); math.Abs(rep.HedgeUSD-want) > 1e-12 || want == 0 {
		t.Errorf("HedgeUSD = %v; want %v (the mean record's cost per copy)", rep.HedgeUSD, want)
	}
	var b strings.Builder
	rep.Print(&b)
	if !strings.Contains(b.String(), "--hedge 10: at most") {
		t.Errorf("the estimate does not say what --hedge costs:\n%s", b.String())
	}
}
