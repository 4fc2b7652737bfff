package engine

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/trialcat/trialcat/internal/cache"
	"github.com/trialcat/trialcat/internal/estimate"
	"github.com/trialcat/trialcat/internal/llm"
	"github.com/trialcat/trialcat/internal/modelinfo"
	"github.com/trialcat/trialcat/internal/prompt"
	"github.com/trialcat/trialcat/internal/record"
	"github.com/trialcat/trialcat/internal/runspec"
)

// EstimateOptions are the flags of `coordinator estimate`: the run's, and the latency to assume.
type EstimateOptions struct {
	Options
	// Latency is the per-request latency to assume; 0 means a figure per model family.
	Latency time.Duration
}

// Estimate prints to deps.Stdout the tokens, cost per model and wall time a run with opts would
// take, making no API calls: every record is rendered with the run's prompt and counted with a
// real tokenizer.
func Estimate(ctx context.Context, eopts EstimateOptions, deps Deps) error {
	e, err := runEstimate(ctx, eopts, &deps, true)
	if err != nil {
		return err
	}
	opts, rep := e.opts, e.rep
	rep.Print(deps.Stdout)
	if len(opts.Cascade) > 0 {
		printCascadeEstimate(deps.Stdout, rep.Costs, opts.Cascade, max(opts.Votes, 1))
	}
	if opts.Agent {
		rg, err := e.agent(ctx)
		if err != nil {
			return err
		}
		rg.print(deps.Stdout, opts.Model)
	}
	return nil
}

// estimated is an estimate's settings and figures.
type estimated struct {
	opts   Options
	ins    instructions
	prices *modelinfo.PriceTable
	rep    *estimate.Report
}

// runEstimate checks the run's settings as a run would and estimates it; withCache counts the
// records the response cache (--cache) answers as free.
func runEstimate(ctx context.Context, eopts EstimateOptions, deps *Deps, withCache bool) (*estimated, error) {
	deps.defaults()
	opts, latency := eopts.Options, eopts.Latency
	// The run's own checks: an estimate is of a run that could start.
	if err := opts.check(); err != nil {
		return nil, err
	}
	if err := checkBaseURL(&opts, deps); err != nil {
		return nil, err
	}
	// The estimate is about an API run, whatever key is set now.
	ins, err := loadInstructions(&opts, runspec.ProviderOpenAI)
	if err != nil {
		return nil, err
	}
	sch, tmpl := ins.schema, ins.tmpl
	prices, err := modelinfo.LoadPrices(opts.PricesFile)
	if err != nil {
		return nil, err
	}
	if len(opts.Cascade) > 0 {
		opts.Model = opts.Cascade[0]
	}
	eo := estimate.Options{
		Input: opts.Input, IDField: opts.IDField, Dedupe: opts.Dedupe, Model: opts.Model,
		ReasoningEffort: opts.ReasoningEffort, MaxCompletionTokens: opts.MaxCompletionTokens,
		Template: tmpl, Schema: sch, Prices: prices, Workers: opts.Workers, Concurrency: opts.Concurrency,
		RPM: opts.RPM, TPM: opts.TPM, Latency: latency, Hedge: opts.Hedge,
	}
	if opts.Cache != "" && withCache {
		// A record the response cache answers is free: the key is the request the worker
		// would send, to the server the run would ask.
		dir, err := cacheDir(opts.Cache)
		if err != nil {
			return nil, err
		}
		c, err := cache.Open(dir)
		if err != nil {
			return nil, err
		}
		base := opts.BaseURL
		if base == "" {
			base = deps.Getenv("OPENAI_BASE_URL")
		}
		base, _ = runspec.PublicURL(base)
		spec := &runspec.Spec{ReasoningEffort: opts.ReasoningEffort, Temperature: opts.Temperature, MaxCompletionTokens: opts.MaxCompletionTokens}
		oa, host := llm.NewOpenAI(llm.ForRun(spec, sch, "", base)), cache.Host(base)
		eo.Cached = func(rec record.Record, msgs prompt.Messages) bool {
			body, err := oa.Body(llm.Request{RecordID: rec.ID, Model: opts.Model, System: msgs.System, User: msgs.User})
			if err != nil {
				return false
			}
			_, ok := c.Get(cache.Key(host, body))
			return ok
		}
	}
	rep, err := estimate.Run(ctx, eo)
	if err != nil {
		return nil, err
	}
	return &estimated{opts: opts, ins: ins, prices: prices, rep: rep}, nil
}

// agent is the range of an agent run over the input (--agent).
func (e *estimated) agent(ctx context.Context) (agentRange, error) {
	out := modelinfo.ExpectedOutput(60, e.opts.Model, e.opts.ReasoningEffort, e.opts.MaxCompletionTokens).PerRequest
	return estimateAgent(ctx, &e.opts, e.ins, e.prices, out)
}

// printCascadeEstimate prices a --cascade run: every record asked of the first model, and the
// share escalated to the others (unknown before the run: at 10, 25 and 50%), against the last
// model alone; each with the run's votes.
func printCascadeEstimate(w io.Writer, costs []estimate.ModelCost, models []string, votes int) {
	price := func(m string) (float64, bool) {
		for _, c := range costs {
			if c.Model == m {
				return c.USD * float64(votes), c.Known
			}
		}
		return 0, false
	}
	first, ok1 := price(models[0])
	last, ok2 := price(models[len(models)-1])
	fmt.Fprintf(w, "\ncascade %s (%d vote(s) a record at each step):\n", strings.Join(models, " -> "), votes)
	if !ok1 || !ok2 {
		fmt.Fprintf(w, "  the price of a model of the cascade is unknown: add it with --prices\n")
		return
	}
	fmt.Fprintf(w, "  %s on every record $%.4f; %s alone $%.4f\n", models[0], first, models[len(models)-1], last)
	for _, share := range []float64{0.10, 0.25, 0.50} {
		fmt.Fprintf(w, "  with %2.0f%% escalated: $%.4f (%.0f%% of %s alone)\n", 100*share, first+share*last, 100*(first+share*last)/last, models[len(models)-1])
	}
	fmt.Fprintf(w, "  (the share escalated is known after the run: summary.json's cascade.escalated_share)\n")
}
