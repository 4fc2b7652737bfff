package estimate

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/trialcat/trialcat/internal/exitcode"
	"github.com/trialcat/trialcat/internal/input"
	"github.com/trialcat/trialcat/internal/modelinfo"
	"github.com/trialcat/trialcat/internal/prompt"
	"github.com/trialcat/trialcat/internal/record"
	"github.com/trialcat/trialcat/internal/schema"
	"github.com/trialcat/trialcat/internal/taxonomy"
	"github.com/trialcat/trialcat/internal/tokens"
)

// Prompt caching, as OpenAI documents it: prefixes of CacheMinTokens or more are cached, in steps
// of CacheStepTokens.
const (
	CacheMinTokens  = 1024
	CacheStepTokens = 128
)

// offlineModel is the price table's entry for the offline categorizer, left out of comparisons.
const offlineModel = "offline"

// Options are the run's flags that matter to an estimate.
type Options struct {
	// Input is the file of records; IDField and Dedupe are as for the run.
	Input   string
	IDField string
	Dedupe  bool
	// Model is the run's model; ReasoningEffort ("" for the model's default) and
	// MaxCompletionTokens (0: no cap) are as for the run.
	Model               string
	ReasoningEffort     string
	MaxCompletionTokens int64
	// Template renders each record's prompt; nil means the embedded default (taxonomy.Prompt).
	Template *prompt.Template
	// Schema is the answer schema; nil means the embedded default (taxonomy.MustSchema).
	Schema *schema.Schema
	// Prices prices the run and the comparison; nil means modelinfo.Prices().
	Prices *modelinfo.PriceTable
	// Workers, Concurrency, RPM and TPM are as for the run (RPM, TPM 0: unlimited).
	Workers, Concurrency, RPM, TPM int
	// Latency is the per-request latency to assume; 0 means the model family's default (see
	// modelinfo.Families).
	Latency time.Duration
	// Cached, when set, reports whether the response cache answers a record (rendered as
	// msgs): such records cost nothing and are left out of the figures.
	Cached func(rec record.Record, msgs prompt.Messages) bool
	// Hedge is the run's --hedge percent (0: off).
	Hedge float64
}

// check validates the options; errors wrap exitcode.ErrUsage.
func (o *Options) check() error {
	usage := func(format string, args ...any) error {
		return fmt.Errorf("estimate: "+format+": %w", append(args, exitcode.ErrUsage)...)
	}
	switch {
	case o.Input == "":
		return usage("--input is required: the JSON, JSON Lines or CSV file of records to estimate")
	case o.Model == "":
		return usage("--model is empty: name the model to estimate for, such as gpt-5-mini")
	case o.Workers < 1 || o.Concurrency < 1 || o.RPM < 0 || o.TPM < 0:
		// The engine checks the run's settings and says what is wrong before it gets here.
		return fmt.Errorf("estimate: workers %d, concurrency %d, rpm %d, tpm %d: the run's settings were not checked", o.Workers, o.Concurrency, o.RPM, o.TPM)
	case o.MaxCompletionTokens < 0:
		return usage("--max-completion-tokens %d cannot be negative (0 means no cap)", o.MaxCompletionTokens)
	case o.Latency < 0:
		return usage("--latency %s cannot be negative (0 means the model's default)", o.Latency)
	}
	if err := modelinfo.CheckEffort(o.ReasoningEffort); err != nil {
		return fmt.Errorf("estimate: %w", err)
	}
	return nil
}

// ModelCost is the expected cost of the run with one model.
type ModelCost struct {
	Model string
	// USD is the expected cost, cached input priced at the cached rate; 0 when !Known.
	USD float64
	// Known is false when the price table has no price for the model.
	Known bool
	// BatchUSD is the expected cost through the Batch API (--backend batch-api).
	BatchUSD float64
	// Output is the expected output per request with this model (reasoning differs by model).
	Output modelinfo.Output
	// OutputTokens is Output.PerRequest × records.
	OutputTokens int64
	// ContextWindow is modelinfo.ContextWindow(Model); 0 when unknown.
	ContextWindow int
	// TooLong counts records whose input plus expected output exceed ContextWindow.
	TooLong int64
	// Wall is the expected wall time with this model's latency (or --latency).
	Wall time.Duration
}

// Report is the estimate of a run.
type Report struct {
	Input string
	Model string

	// Records counts the records a run would ask (after --dedupe, without those the response
	// cache answers).
	Records int64
	// FromCache counts the records the response cache answers: free, not in the figures.
	FromCache int64

	// PromptTokens counts the rendered messages of all requests, chat framing included;
	// PromptMean, PromptP50, PromptP95 and PromptMax are per request (exact, nearest rank), and
	// PromptMaxID is the first record with PromptMax tokens.
	PromptTokens  int64
	PromptMean    float64
	PromptP50     int
	PromptP95     int
	PromptMax     int
	PromptMaxID   string
	SystemTokens  int  // tokens of the system message (of the first record when not static)
	SystemStatic  bool // every record has the same system message
	SchemaTokens  int  // approximate tokens the response schema adds to every request
	RequestInputs int  // mean input tokens per request: PromptMean + SchemaTokens, rounded

	// InputTokens are all input tokens: PromptTokens + Records × SchemaTokens.
	InputTokens int64
	// CachedPrefix is the tokens per request expected from the prompt cache (0 when the static
	// prefix is under CacheMinTokens); CachedRequests the requests expected to hit it;
	// CachedTokens their product; CachedShare = CachedTokens / InputTokens.
	CachedPrefix   int
	CachedRequests int64
	CachedTokens   int64
	CachedShare    float64

	// Output is the expected output per request with the run's model; OutputTokens the total.
	Output       modelinfo.Output
	OutputTokens int64

	// Wall is the expected wall time with the run's model.
	Wall        Wall
	Workers     int
	Concurrency int
	RPM, TPM    int
	// Hedge is --hedge; HedgeRequests the most copies it may send (Hedge percent of Records)
	// and HedgeUSD what they cost at most, each at the run's mean cost per record.
	Hedge         float64
	HedgeRequests int64
	HedgeUSD      float64

	// Costs holds the run's model first, then every other model of the price table but
	// offline, cheapest first (unknown prices last).
	Costs []ModelCost
	// PricesAsOf and PricesSource describe the price table.
	PricesAsOf   string
	PricesSource string
	// prices is the table the figures come from.
	prices *modelinfo.PriceTable
}

// Run renders the prompt of every record of opts.Input, counts the tokens and estimates the
// run's cost and wall time. It makes no API call. Errors in the options, the input or the
// template wrap exitcode.ErrUsage.
func Run(ctx context.Context, opts Options) (*Report, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	if opts.Template == nil {
		t, err := prompt.Parse(taxonomy.Source, taxonomy.Prompt())
		if err != nil {
			return nil, fmt.Errorf("estimate: default prompt: %w", err)
		}
		opts.Template = t
	}
	if opts.Schema == nil {
		opts.Schema = taxonomy.MustSchema()
	}
	if opts.Prices == nil {
		opts.Prices = modelinfo.Prices()
	}
	schemaTokens, err := countSchema(opts.Schema)
	if err != nil {
		return nil, err
	}
	p, err := countPrompts(ctx, opts)
	if err != nil {
		return nil, err
	}
	if len(p.fromCache) > 0 {
		// The cache's records cost nothing: the figures are for the others.
		skip := make(map[int64]bool, len(p.fromCache))
		for _, i := range p.fromCache {
			skip[i] = true
		}
		kept := p.counts[:0]
		for i, c := range p.counts {
			if !skip[int64(i)] {
				kept = append(kept, c)
			}
		}
		p.counts = kept
	}
	rep := &Report{
		Input: opts.Input, Model: opts.Model, Records: int64(len(p.counts)), FromCache: int64(len(p.fromCache)),
		PromptTokens: p.total, PromptMaxID: p.maxID, SystemTokens: p.system, SystemStatic: p.static,
		SchemaTokens: schemaTokens, Workers: opts.Workers, Concurrency: opts.Concurrency,
		RPM: opts.RPM, TPM: opts.TPM, PricesAsOf: opts.Prices.AsOf, PricesSource: opts.Prices.Source,
		Hedge: opts.Hedge, prices: opts.Prices,
	}
	slices.Sort(p.counts)
	n := len(p.counts)
	if n == 0 {
		return rep, nil // every record is answered by the response cache
	}
	rep.PromptMean = float64(p.total) / float64(n)
	rep.PromptP50, rep.PromptP95 = quantile(p.counts, 0.50), quantile(p.counts, 0.95)
	rep.PromptMax = int(p.counts[n-1])
	rep.RequestInputs = int(math.Round(rep.PromptMean)) + schemaTokens
	rep.InputTokens = p.total + rep.Records*int64(schemaTokens)
	rep.CachedPrefix, rep.CachedRequests = cached(schemaTokens, p.system, p.static, rep.Records, opts.Workers*opts.Concurrency)
	rep.CachedTokens = int64(rep.CachedPrefix) * rep.CachedRequests
	rep.CachedShare = float64(rep.CachedTokens) / float64(max(1, rep.InputTokens))

	answer := tokens.AnswerTokens(opts.Schema)
	costOf := func(model string) ModelCost {
		c := ModelCost{Model: model, Output: modelinfo.ExpectedOutput(answer, model, opts.ReasoningEffort, opts.MaxCompletionTokens)}
		c.OutputTokens = int64(c.Output.PerRequest) * rep.Records
		c.USD, c.Known = opts.Prices.Cost(model, rep.InputTokens, rep.CachedTokens, c.OutputTokens)
		c.BatchUSD, _ = opts.Prices.BatchCost(model, rep.InputTokens, rep.CachedTokens, c.OutputTokens)
		c.ContextWindow = modelinfo.ContextWindow(model)
		if c.ContextWindow > 0 {
			// A record is too long when its prompt exceeds what the window leaves for the schema
			// and the expected output.
			limit := c.ContextWindow - schemaTokens - c.Output.PerRequest
			c.TooLong = int64(n - countAtMost(p.counts, limit))
		}
		c.Wall = wallFor(opts, model, rep.Records, rep.InputTokens+c.OutputTokens, c.Output.PerRequest).Total
		return c
	}
	run := costOf(opts.Model)
	rep.Output, rep.OutputTokens = run.Output, run.OutputTokens
	rep.Wall = wallFor(opts, opts.Model, rep.Records, rep.InputTokens+run.OutputTokens, run.Output.PerRequest)
	var others []ModelCost
	for m := range opts.Prices.Rates {
		if m == offlineModel || m == modelinfo.Normalize(opts.Model) {
			continue
		}
		others = append(others, costOf(m))
	}
	slices.SortFunc(others, func(a, b ModelCost) int {
		if a.Known != b.Known {
			if a.Known {
				return -1
			}
			return 1
		}
		return cmp.Or(cmp.Compare(a.USD, b.USD), cmp.Compare(a.Model, b.Model))
	})
	rep.Costs = append([]ModelCost{run}, others...)
	if rep.Hedge > 0 && rep.Records > 0 {
		rep.HedgeRequests = int64(rep.Hedge / 100 * float64(rep.Records))
		rep.HedgeUSD = run.USD / float64(rep.Records) * float64(rep.HedgeRequests)
	}
	return rep, nil
}

// wallFor is the wall time of the run with model.
func wallFor(opts Options, model string, records, allTokens int64, outputPerRequest int) Wall {
	latency, def := opts.Latency, false
	if latency == 0 {
		latency, def = modelinfo.FamilyOf(model).Latency(outputPerRequest), true
	}
	w := WallTime(records, allTokens, latency, opts.Workers, opts.Concurrency, opts.RPM, opts.TPM)
	w.LatencyDefault = def
	return w
}

// cached returns the tokens per request expected from the prompt cache and the number of
// requests expected to get them: none when the static prefix (response schema and system
// message) is under CacheMinTokens or the system message differs between records; otherwise the
// prefix rounded down to a CacheStepTokens step, for every request after the first wave of
// inFlight requests, which all start before any cache exists.
func cached(schemaTokens, systemTokens int, static bool, records int64, inFlight int) (prefix int, requests int64) {
	p := schemaTokens + systemTokens
	if !static || systemTokens == 0 || p < CacheMinTokens {
		return 0, 0
	}
	prefix = CacheMinTokens + (p-CacheMinTokens)/CacheStepTokens*CacheStepTokens
	return prefix, max(0, records-int64(inFlight))
}

// countSchema approximates the tokens the response schema adds to each request by the tokens
// of the strict JSON schema sent in response_format.
func countSchema(s *schema.Schema) (int, error) {
	b, err := json.Marshal(s.StrictJSON())
	if err != nil {
		return 0, fmt.Errorf("estimate: encode schema %s: %w", s.Source(), err)
	}
	return tokens.Count(string(b)), nil
}

// quantile returns the q-quantile (nearest rank) of sorted, which is not empty.
func quantile(sorted []int32, q float64) int {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return int(sorted[min(max(i, 0), len(sorted)-1)])
}

// countAtMost returns how many values of sorted are <= limit.
func countAtMost(sorted []int32, limit int) int {
	if limit < 0 {
		return 0
	}
	if limit >= math.MaxInt32 {
		return len(sorted)
	}
	i, _ := slices.BinarySearch(sorted, int32(limit)+1)
	return i
}

// prompts is the outcome of the counting pass.
type prompts struct {
	counts    []int32 // prompt tokens of each record, by index
	fromCache []int64 // indexes of the records the response cache answers
	total     int64
	maxID     string
	system    int  // tokens of the first record's system message
	static    bool // every record's system message equals the first's
}

// counted is the count of one record, or the error rendering it.
type counted struct {
	index     int64
	id        string
	tokens    int32
	newSystem bool // the record's system message differs from the first record's
	cached    bool // the response cache answers it
	err       error
}

// countPrompts streams the input, renders every record's prompt and counts its tokens, on
// GOMAXPROCS goroutines. It keeps one int32 per record. When prompts fail to render it reports
// the first failing record in input order, whatever the scheduling.
func countPrompts(ctx context.Context, opts Options) (*prompts, error) {
	r, err := input.Open(opts.Input, input.Options{IDField: opts.IDField, Dedupe: opts.Dedupe})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	first, err := r.Next()
	if err != nil {
		return nil, err // input reports an empty file itself
	}
	msgs, err := opts.Template.Render(first)
	if err != nil {
		return nil, renderError(opts.Input, first, err)
	}
	c := newCounter(msgs)

	n := runtime.GOMAXPROCS(0)
	recs := make(chan record.Record, n)
	out := make(chan counted, n)
	stop := make(chan struct{}) // closed on the first render error: read no further
	readDone := make(chan struct{})
	var readErr error // set by the reader before readDone closes
	go func() {
		defer close(readDone)
		defer close(recs)
		rec := first
		for {
			select {
			case recs <- rec:
			case <-stop:
				return
			case <-ctx.Done():
				return
			}
			next, err := r.Next()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					readErr = err
				}
				return
			}
			rec = next
		}
	}()
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Records already sent are all rendered, so that the earliest failing record is
			// found even when a later one failed first.
			for rec := range recs {
				x := counted{index: rec.Index, id: rec.ID}
				if msgs, err := opts.Template.Render(rec); err != nil {
					x.err = renderError(opts.Input, rec, err)
				} else {
					tok, newSystem := c.count(msgs)
					x.tokens, x.newSystem = clamp32(tok), newSystem
					x.cached = opts.Cached != nil && opts.Cached(rec, msgs)
				}
				select {
				case out <- x:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	go func() {
		wg.Wait()
		close(out)
	}()

	p := &prompts{system: c.system, static: true}
	best, bestIndex := int32(-1), int64(-1)
	var firstErr error
	errIndex := int64(-1)
	for x := range out {
		if x.err != nil {
			if firstErr == nil {
				close(stop)
			}
			if firstErr == nil || x.index < errIndex {
				firstErr, errIndex = x.err, x.index
			}
			continue
		}
		for int64(len(p.counts)) <= x.index {
			p.counts = append(p.counts, 0)
		}
		if x.cached {
			p.fromCache = append(p.fromCache, x.index)
			continue
		}
		p.counts[x.index] = x.tokens
		p.total += int64(x.tokens)
		if x.tokens > best || (x.tokens == best && x.index < bestIndex) {
			best, bestIndex, p.maxID = x.tokens, x.index, x.id
		}
		if x.newSystem {
			p.static = false
		}
	}
	<-readDone
	switch {
	case firstErr != nil:
		return nil, firstErr
	case readErr != nil:
		return nil, readErr
	case ctx.Err() != nil:
		return nil, fmt.Errorf("estimate %s: %w", opts.Input, context.Cause(ctx))
	}
	return p, nil
}

// renderError names the file and position of the record whose prompt could not be rendered;
// err, from prompt.Template.Render, names its ID and wraps exitcode.ErrUsage.
func renderError(path string, rec record.Record, err error) error {
	return fmt.Errorf("--prompt: %s, record %d: %w", path, rec.Index, err)
}

func clamp32(n int) int32 {
	return int32(min(n, math.MaxInt32))
}

// counter counts the prompt tokens of a request: its messages with the chat framing, as
// tokens.Estimate does, reusing the count of the system message every record shares.
type counter struct {
	systemText string
	system     int // tokens.Count(systemText)
	frame      int // what tokens.Estimate adds to the counts of the two messages
}

func newCounter(first prompt.Messages) *counter {
	c := &counter{systemText: first.System, system: tokens.Count(first.System)}
	c.frame = tokens.Estimate(first.System, first.User, 0) - c.system - tokens.Count(first.User)
	return c
}

// count returns the prompt tokens of msgs and whether their system message differs from the
// first record's. It is safe for concurrent use.
func (c *counter) count(msgs prompt.Messages) (int, bool) {
	if msgs.System != c.systemText {
		return tokens.Estimate(msgs.System, msgs.User, 0), true
	}
	return c.system + tokens.Count(msgs.User) + c.frame, false
}
