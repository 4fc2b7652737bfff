package engine

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/trialcat/trialcat/internal/estimate"
	"github.com/trialcat/trialcat/internal/llm"
	"github.com/trialcat/trialcat/internal/textfmt"
)

// PlanOptions are the flags of `coordinator plan`: the run's, the latency to assume, the deadline.
type PlanOptions struct {
	EstimateOptions
	// Deadline is --deadline: the wall time the run must finish within.
	Deadline time.Duration
	// Argv are the run's flags as given, each one word ("--name=value", or "--name" for a
	// switch that is on): every way's command line is them with the way's own.
	Argv []string
}

// Assumptions of the plan, stated in its output.
const (
	// FlexSlowdown is how much slower a flex answer is assumed to be than a default-tier one.
	FlexSlowdown = 2
	// BatchWindow is what the Batch API promises: every request answered within 24 hours (most
	// batches finish far sooner, but nothing says how soon).
	BatchWindow = 24 * time.Hour
	// maxPlanConcurrency caps the --concurrency a plan proposes per worker.
	maxPlanConcurrency = 64
)

// way is one way to run the input.
type way struct {
	name string
	// flags are the way's own flags; drop are the flags of the run it leaves out.
	flags, drop []string
	agent       bool
	usd         float64
	known       bool
	// usdHigh, when above usd, is the top of a range (the agent's).
	usdHigh float64
	wall    time.Duration
	// window says wall is a promise (the Batch API's), not an estimate.
	window bool
	meets  bool
	note   string
}

// Plan prints each way to run the input (live on the default tier, on flex, through the Batch
// API; with the response cache and without; one-shot and with the agent) with its cost and wall
// time at the run's limits, picks the cheapest that meets the deadline among those that keep the
// run's --agent choice, and prints its command line. It makes no API call. When no way meets the
// deadline it says what would, and returns an error (exit 1).
func Plan(ctx context.Context, popts PlanOptions, deps Deps) error {
	switch {
	case popts.Deadline == 0:
		return usagef("plan: --deadline is required: the wall time the run must finish within, such as 6h or 90m")
	case popts.Deadline < 0:
		return usagef("plan: --deadline %s: want a positive wall time, such as 6h or 90m", popts.Deadline)
	}
	e, err := runEstimate(ctx, popts.EstimateOptions, &deps, true)
	if err != nil {
		return err
	}
	opts := e.opts
	ways := oneShotWays(e, opts.Cache != "", opts.Cache != "")
	if opts.Cache != "" {
		plain, err := runEstimate(ctx, popts.EstimateOptions, &deps, false)
		if err != nil {
			return err
		}
		ways = append(ways, oneShotWays(plain, false, true)...)
	}
	if opts.Agent {
		rg, err := e.agent(ctx)
		if err != nil {
			return err
		}
		ways = append(ways, agentWays(e, rg)...)
	}
	for i := range ways {
		ways[i].meets = ways[i].known && ways[i].wall <= popts.Deadline
	}
	best := -1
	for i, w := range ways {
		if !w.meets || w.agent != opts.Agent {
			continue
		}
		if best < 0 || w.usd < ways[best].usd || (w.usd == ways[best].usd && w.wall < ways[best].wall) {
			best = i
		}
	}
	printPlan(deps.Stdout, e, popts, ways, best)
	if best < 0 {
		return fmt.Errorf("plan: no way to run %s meets the deadline of %s at these limits: give the key's real --rpm and --tpm, more --workers, or a later deadline", opts.Input, popts.Deadline)
	}
	return nil
}

// oneShotWays are the live default-tier, flex and Batch API ways of an estimate; cached says
// the estimate counts the response cache, named says the name should say whether it does.
func oneShotWays(e *estimated, cached, named bool) []way {
	rep, opts := e.rep, e.opts
	run := rep.Costs[0]
	suffix, drop := "", []string(nil)
	if named {
		suffix = ", response cache on"
		if !cached {
			suffix, drop = ", response cache off", []string{"--cache"}
		}
	}
	// Each record is asked --votes times (a cascade's first model; what it escalates is not
	// known before the run).
	votes := int64(max(opts.Votes, 1))
	requests, tokens := rep.Records*votes, (rep.InputTokens+run.OutputTokens)*votes
	price := func(tier string) (float64, bool) {
		return e.prices.CostAt(opts.Model, tier, rep.InputTokens*votes, rep.CachedTokens*votes, run.OutputTokens*votes)
	}
	var ways []way
	usd, ok := price("")
	conc, wall := liveWall(opts, requests, tokens, rep.Wall.Latency)
	ways = append(ways, way{name: "live, default tier" + suffix, usd: usd, known: ok, wall: wall,
		flags: concurrencyFlag(opts, conc), drop: drop})
	usd, ok = price(llm.TierFlex)
	conc, wall = liveWall(opts, requests, tokens, rep.Wall.Latency*FlexSlowdown)
	ways = append(ways, way{name: "live, flex tier" + suffix, usd: usd, known: ok, wall: wall,
		flags: append([]string{"--service-tier=" + llm.TierFlex}, concurrencyFlag(opts, conc)...), drop: drop,
		note: fmt.Sprintf("flex answers assumed %dx slower; a request flex refuses --flex-fallback times (%d) goes on the default tier at its price", FlexSlowdown, opts.FlexFallback)})
	if opts.Votes <= 1 && len(opts.Cascade) == 0 {
		usd, ok = price(llm.TierBatch)
		ways = append(ways, way{name: "Batch API" + suffix, usd: usd, known: ok, wall: BatchWindow, window: true,
			flags: []string{"--backend=batch-api"}, drop: append(drop, "--hedge", "--service-tier", "--concurrency"),
			note: "the Batch API promises 24 hours; most batches finish far sooner"})
	}
	return ways
}

// agentWays are the agent's live ways (the Batch API does not take a loop), priced at the top of
// its range.
func agentWays(e *estimated, rg agentRange) []way {
	opts := e.opts
	var ways []way
	for _, tier := range []string{"", llm.TierFlex} {
		lo, ok1 := e.prices.CostAt(opts.Model, tier, rg.lowIn, 0, rg.lowOut)
		hi, ok2 := e.prices.CostAt(opts.Model, tier, rg.highIn, 0, rg.highOut)
		latency, name, flags := e.rep.Wall.Latency, "agent, live, default tier", []string(nil)
		if tier == llm.TierFlex {
			latency, name, flags = latency*FlexSlowdown, "agent, live, flex tier", []string{"--service-tier=" + llm.TierFlex}
		}
		conc, wall := liveWall(opts, rg.highTurns, rg.highIn+rg.highOut, latency)
		ways = append(ways, way{name: name, agent: true, usd: hi, usdHigh: hi, known: ok1 && ok2, wall: wall,
			flags: append(flags, concurrencyFlag(opts, conc)...), note: fmt.Sprintf("agent: $%.4f if every record submits at once, $%.4f if every record is read whole (planned at the top)", lo, hi)})
	}
	return ways
}

// liveWall is the concurrency a live run of requests (tokens in all) needs to reach the run's
// limits and its wall time then: with --rpm or --tpm, enough requests in flight that the limit,
// not the latency, bounds the run (at most maxPlanConcurrency a worker, never fewer than the
// run's); without them, the run's own workers and concurrency.
func liveWall(opts Options, requests, tokens int64, latency time.Duration) (int, time.Duration) {
	conc := opts.Concurrency
	if opts.RPM > 0 || opts.TPM > 0 {
		limit := estimate.WallTime(requests, tokens, latency, math.MaxInt32, 1, opts.RPM, opts.TPM).Total - estimate.StartOverhead
		if limit > 0 {
			inFlight := math.Ceil(float64(requests) * float64(latency) / float64(limit))
			conc = min(max(conc, int(math.Ceil(inFlight/float64(opts.Workers)))), maxPlanConcurrency)
		}
	}
	return conc, estimate.WallTime(requests, tokens, latency, opts.Workers, conc, opts.RPM, opts.TPM).Total
}

// concurrencyFlag is the --concurrency a way needs, none when it is the run's own.
func concurrencyFlag(opts Options, conc int) []string {
	if conc == opts.Concurrency {
		return nil
	}
	return []string{fmt.Sprintf("--concurrency=%d", conc)}
}

// commandLine is the run's flags with a way's: those the way sets or drops removed first.
func commandLine(argv []string, w way) string {
	owned := slices.Clone(w.drop)
	for _, f := range w.flags {
		name, _, _ := strings.Cut(f, "=")
		owned = append(owned, name)
	}
	if !w.agent {
		owned = append(owned, "--agent", "--agent-max-turns", "--agent-max-tokens", "--agent-fallback", "--mcp", "--transcripts")
	}
	words := []string{"coordinator"}
	for _, a := range argv {
		name, _, _ := strings.Cut(a, "=")
		if !slices.Contains(owned, name) {
			words = append(words, shellQuote(a))
		}
	}
	for _, f := range w.flags {
		words = append(words, shellQuote(f))
	}
	return strings.Join(words, " ")
}

// shellQuote quotes a word for a POSIX shell when it needs it.
func shellQuote(s string) string {
	safe := func(r rune) bool {
		return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_=./:,@%+", r)
	}
	if s != "" && strings.IndexFunc(s, func(r rune) bool { return !safe(r) }) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func printPlan(w io.Writer, e *estimated, popts PlanOptions, ways []way, best int) {
	opts, rep := e.opts, e.rep
	fmt.Fprintf(w, "Plan for %s records of %s with %s, to finish within %s (no API calls were made)\n",
		textfmt.Thousands(rep.Records+rep.FromCache), opts.Input, opts.Model, roundWall(popts.Deadline))
	if opts.RPM > 0 || opts.TPM > 0 {
		fmt.Fprintf(w, "at the limits --rpm %s --tpm %s, with %d workers (a way raises --concurrency to reach them, up to %d)\n",
			limitText(opts.RPM), limitText(opts.TPM), opts.Workers, maxPlanConcurrency)
	} else {
		fmt.Fprintf(w, "no --rpm or --tpm: live wall times are at --workers %d x --concurrency %d; give the key's limits to plan at them\n", opts.Workers, opts.Concurrency)
	}
	fmt.Fprintf(w, "latency %s a request (%s); prompt caching: %.0f%% of input tokens expected from the provider's cache\n\n",
		rep.Wall.Latency, map[bool]string{true: "a rough figure for the model family: measure it and pass --latency", false: "--latency"}[rep.Wall.LatencyDefault], 100*rep.CachedShare)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "  \tway\tcost\twall time\twithin %s\n", roundWall(popts.Deadline))
	for i, wy := range ways {
		mark := " "
		if i == best {
			mark = "*"
		}
		cost := "unknown price"
		if wy.known {
			cost = fmt.Sprintf("$%.4f", wy.usd)
			if wy.agent {
				cost = "up to " + cost
			}
		}
		wall := roundWall(wy.wall)
		if wy.window {
			wall = "within " + wall
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", mark, wy.name, cost, wall, map[bool]string{true: "yes", false: "no"}[wy.meets])
	}
	tw.Flush()
	var notes []string
	for _, wy := range ways {
		if wy.note != "" && !slices.Contains(notes, wy.note) {
			notes = append(notes, wy.note)
		}
	}
	if rep.FromCache > 0 {
		notes = append(notes, fmt.Sprintf("the response cache answers %s records at no cost", textfmt.Thousands(rep.FromCache)))
	}
	if opts.Votes > 1 {
		notes = append(notes, fmt.Sprintf("every record is asked %d times (--votes)", opts.Votes))
	}
	if len(opts.Cascade) > 0 {
		notes = append(notes, fmt.Sprintf("--cascade: priced for %s on every record; the records it escalates add their share of %s (known after the run: summary.json's cascade.escalated_share)",
			opts.Cascade[0], strings.Join(opts.Cascade[1:], ", ")))
	}
	fmt.Fprintln(w)
	for _, n := range notes {
		fmt.Fprintf(w, "  - %s\n", n)
	}
	if best < 0 {
		fastest := slices.MinFunc(ways, func(a, b way) int { return cmp.Compare(a.wall, b.wall) })
		fmt.Fprintf(w, "\nno way meets %s; the fastest is %s at about %s\n", roundWall(popts.Deadline), fastest.name, roundWall(fastest.wall))
		return
	}
	b := ways[best]
	fmt.Fprintf(w, "\ncheapest within %s: %s, about $%.4f in about %s\n  %s\n", roundWall(popts.Deadline), b.name, b.usd, roundWall(b.wall), commandLine(popts.Argv, b))
}

func limitText(n int) string {
	if n == 0 {
		return "unlimited"
	}
	return textfmt.Thousands(int64(n))
}

// roundWall spells a wall time to the second (to the minute past an hour).
func roundWall(d time.Duration) string {
	if d < time.Hour {
		return d.Round(time.Second).String()
	}
	d = d.Round(time.Minute)
	h, m := int64(d/time.Hour), int64(d%time.Hour/time.Minute)
	if m == 0 {
		return fmt.Sprintf("%dh", h)
	}
	return fmt.Sprintf("%dh%dm", h, m)
}
