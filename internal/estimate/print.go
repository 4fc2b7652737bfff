package estimate

import (
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/trialcat/trialcat/internal/textfmt"

	"github.com/trialcat/trialcat/internal/modelinfo"
)

// Print writes the report for a person: aligned plain text whose last line is
//
//	estimate: N records, ~X input tokens, ~Y output tokens, ~$Z with MODEL, ~T wall time with W workers
//
// for scripts to grep ($? when the model's price is unknown).
func (r *Report) Print(w io.Writer) {
	if r.FromCache > 0 {
		fmt.Fprintf(w, "response cache: %d records are answered from it at no cost; the figures below are for the other %d\n\n", r.FromCache, r.Records)
	}
	if r.Records == 0 {
		fmt.Fprintf(w, "estimate: every record is answered by the response cache: the run asks nothing and costs nothing\n")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	line := func(format string, args ...any) { fmt.Fprintf(tw, format+"\n", args...) }
	run := r.Costs[0]

	line("Estimate for %s of %s (no API calls were made)", r.Model, r.Input)
	line("")
	line("Records\t%s", textfmt.Thousands(r.Records))
	line("Prompt tokens\t%s total\tmean %s, p50 %s, p95 %s, max %s (record %s)", textfmt.Thousands(r.PromptTokens),
		textfmt.Thousands(int64(r.PromptMean+0.5)), textfmt.Thousands(int64(r.PromptP50)), textfmt.Thousands(int64(r.PromptP95)), textfmt.Thousands(int64(r.PromptMax)), r.PromptMaxID)
	if r.SystemStatic {
		line("  system message\t%s per request\tthe same for every record", textfmt.Thousands(int64(r.SystemTokens)))
	} else {
		line("  system message\tdiffers between records\tno prompt caching assumed")
	}
	line("  response schema\t~%s per request\tapproximate: the tokens of the strict JSON schema", textfmt.Thousands(int64(r.SchemaTokens)))
	line("Input tokens\t%s\t~%s per request", textfmt.Thousands(r.InputTokens), textfmt.Thousands(int64(r.RequestInputs)))
	if r.CachedTokens > 0 {
		line("  cached\t~%s (%.0f%% of input)\t%s tokens per request on %s requests", textfmt.Thousands(r.CachedTokens), 100*r.CachedShare,
			textfmt.Thousands(int64(r.CachedPrefix)), textfmt.Thousands(r.CachedRequests))
		line("\t\tassumes OpenAI's prompt cache (static prefix >= %d tokens) hits after the first %d requests in flight; best case", CacheMinTokens, r.Wall.InFlight)
		if past := (r.SchemaTokens + r.SystemTokens - CacheMinTokens) % CacheStepTokens; past > 0 {
			line("\t\tthe static prefix is %s tokens: its last %d are past the last %d-token step and are billed in full; %d more static tokens would be cached too",
				textfmt.Thousands(int64(r.SchemaTokens+r.SystemTokens)), past, CacheStepTokens, CacheStepTokens-past)
		}
	} else {
		line("  cached\tnone\t%s", noCache(r))
		if add := CacheMinTokens - (r.SchemaTokens + r.SystemTokens); r.SystemStatic && r.SystemTokens > 0 && add > 0 {
			line("\t\tadd about %s tokens to the system message (or the schema's descriptions) to cross the minimum: %s", textfmt.Thousands(int64(add)), crossing(r, add))
		}
	}
	line("Output per request\t~%s\t%s", textfmt.Thousands(int64(r.Output.PerRequest)), outputParts(r.Model, r.Output))
	if r.Output.Reasoning > 0 {
		line("\t\tthe reasoning allowance is the largest uncertainty of this estimate: real use varies per record and can be several times it")
	}
	if r.Output.Capped() {
		line("\t\t! --max-completion-tokens %d is below the expected ~%d: answers may be cut off and fail as truncated", r.Output.Cap, r.Output.Answer+r.Output.Reasoning)
	}
	line("Output tokens\t~%s\t~%s per request × %s records", textfmt.Thousands(r.OutputTokens), textfmt.Thousands(int64(r.Output.PerRequest)), textfmt.Thousands(r.Records))
	tw.Flush()

	fmt.Fprintln(w)
	asOf := ""
	if r.PricesAsOf != "" {
		asOf = ", prices as of " + r.PricesAsOf
	}
	fmt.Fprintf(w, "Cost with cached input at the cached rate (USD%s)\n", asOf)
	line("  model\toutput/request\tcost live\tbatch api\ttoo long\tcontext\twall time")
	for i, c := range r.Costs {
		name := c.Model
		if i == 0 {
			name += " *"
		}
		window := "?"
		if c.ContextWindow > 0 {
			window = textfmt.Thousands(int64(c.ContextWindow))
		}
		line("  %s\t%s\t%s\t%s\t%s\t%s\t%s", name, textfmt.Thousands(int64(c.Output.PerRequest)), usd(c), batchUSD(c), textfmt.Thousands(c.TooLong), window, roundDuration(c.Wall))
	}
	tw.Flush()
	fmt.Fprintln(w, "  * the run's model; the others with the same prompt, --reasoning-effort (or their default) and workers")
	fmt.Fprintln(w, "  --service-tier flex is priced as the batch api column, answered live (slower, and may be refused: --flex-fallback)")
	fmt.Fprintln(w, "  batch api: --backend batch-api, at Batch API prices; answers come within the 24-hour window (often sooner), not in the wall time shown")
	if run.TooLong > 0 {
		fmt.Fprintf(w, "  ! %d records do not fit %s's context window of %d tokens with the expected output; they will fail\n", run.TooLong, run.Model, run.ContextWindow)
	}
	if !run.Known {
		fmt.Fprintf(w, "  ! no price for %s in the price table: its cost is unknown\n", run.Model)
	}
	if r.Hedge > 0 {
		fmt.Fprintf(w, "  --hedge %g: at most %s more requests (%g%% of the records), at most $%.4f more at the mean cost per record (a copy cancelled before it answers bills less)\n",
			r.Hedge, textfmt.Thousands(r.HedgeRequests), r.Hedge, r.HedgeUSD)
	}

	fmt.Fprintln(w)
	wall := r.Wall
	fmt.Fprintf(w, "Wall time with %s\n", r.Model)
	line("  in flight\t%d\t%d workers × %d concurrency", wall.InFlight, r.Workers, r.Concurrency)
	if wall.LatencyDefault {
		f := modelinfo.FamilyOf(r.Model)
		line("  latency\t%s per request\tdefault for %s: %s + %d output tokens at %g tokens/s; measure and set --latency",
			roundLatency(wall.Latency), familyName(f), roundLatency(f.FirstToken), r.Output.PerRequest, f.TokensPerSecond)
	} else {
		line("  latency\t%s per request\t--latency", roundLatency(wall.Latency))
	}
	line("  latency bound\t%s\t%s requests × %s / %d in flight", roundDuration(wall.LatencyBound), textfmt.Thousands(r.Records), roundLatency(wall.Latency), wall.InFlight)
	if r.RPM > 0 {
		line("  rpm bound\t%s\t%s requests / %s per minute", roundDuration(wall.RPMBound), textfmt.Thousands(r.Records), textfmt.Thousands(int64(r.RPM)))
	} else {
		line("  rpm bound\tnone\t--rpm 0: unlimited here; the account's own limit still applies")
	}
	if r.TPM > 0 {
		line("  tpm bound\t%s\t%s tokens / %s per minute", roundDuration(wall.TPMBound), textfmt.Thousands(r.InputTokens+r.OutputTokens), textfmt.Thousands(int64(r.TPM)))
	} else {
		line("  tpm bound\tnone\t--tpm 0: unlimited here; the account's own limit still applies")
	}
	line("  start overhead\t%s\tchecking the input, writing batches, starting workers", roundDuration(wall.Overhead))
	line("  total\t~%s\t%s", roundDuration(wall.Total), boundAdvice(wall.Bound))
	tw.Flush()

	fmt.Fprintln(w)
	fmt.Fprintf(w, "estimate: %d records, ~%d input tokens, ~%d output tokens, ~$%s with %s, ~%s wall time with %d workers; ~%s through the Batch API within 24 h\n",
		r.Records, r.InputTokens, r.OutputTokens, usdPlain(run), r.Model, roundDuration(wall.Total), r.Workers, batchUSD(run))
}

// noCache says why no cached input is expected.
func noCache(r *Report) string {
	switch {
	case !r.SystemStatic:
		return "the system message differs between records"
	case r.SystemTokens == 0:
		return "the template has no system message"
	case r.CachedPrefix == 0:
		return fmt.Sprintf("the static prefix (schema + system message, %s tokens) is under the %d tokens OpenAI caches",
			textfmt.Thousands(int64(r.SchemaTokens+r.SystemTokens)), CacheMinTokens)
	default:
		return fmt.Sprintf("all %s requests start in the first wave of %d in flight, before any cache exists", textfmt.Thousands(r.Records), r.Wall.InFlight)
	}
}

// crossing says what adding add static tokens to every request would save once the prefix is
// cached: the first CacheMinTokens of each request after the first wave at the cached rate,
// against the added tokens billed on every request.
func crossing(r *Report, add int) string {
	if r.prices == nil {
		return ""
	}
	rate, ok := r.prices.Lookup(r.Model)
	if !ok || r.Records == 0 {
		return "the run's model has no price to weigh it with"
	}
	hits := max(0, r.Records-int64(r.Wall.InFlight))
	saved := float64(hits)*CacheMinTokens*(rate.Input-rate.CachedInput)/1e6 - float64(r.Records)*float64(add)*rate.Input/1e6
	if saved <= 0 {
		return fmt.Sprintf("at %s records it would cost more than it saves", textfmt.Thousands(r.Records))
	}
	return fmt.Sprintf("about $%.4f saved on this input with %s", saved, r.Model)
}

// outputParts explains the output per request.
func outputParts(model string, o modelinfo.Output) string {
	s := fmt.Sprintf("answer ~%d", o.Answer)
	switch {
	case o.Effort == "":
		s += fmt.Sprintf(" (%s does not reason)", model)
	case o.EffortDefault:
		s += fmt.Sprintf(" + reasoning ~%d (effort %s, the default of %s)", o.Reasoning, o.Effort, model)
	default:
		s += fmt.Sprintf(" + reasoning ~%d (--reasoning-effort %s)", o.Reasoning, o.Effort)
	}
	if o.Capped() {
		s += fmt.Sprintf(", cut to --max-completion-tokens %d", o.Cap)
	}
	return s
}

func boundAdvice(bound string) string {
	switch bound {
	case BoundRPM:
		return "rpm-bound: --rpm sets the pace; more workers would not help"
	case BoundTPM:
		return "tpm-bound: --tpm sets the pace; shorter prompts or a higher limit would help"
	default:
		return "latency-bound: more --workers or --concurrency would shorten it, up to the account's rate limits"
	}
}

func familyName(f modelinfo.Family) string {
	if f.Prefix == "" {
		return "an unknown model"
	}
	return f.Prefix + " models"
}

// usd formats a cost for the table.
func usd(c ModelCost) string {
	if !c.Known {
		return "unknown price"
	}
	return "$" + usdPlain(c)
}

// batchUSD formats the Batch API cost for the table.
func batchUSD(c ModelCost) string {
	if !c.Known {
		return "?"
	}
	return "$" + usdPlain(ModelCost{USD: c.BatchUSD, Known: true})
}

// usdPlain formats a cost without the dollar sign: "?" when unknown.
func usdPlain(c ModelCost) string {
	switch {
	case !c.Known:
		return "?"
	case c.USD == 0 || c.USD >= 1:
		return strconv.FormatFloat(c.USD, 'f', 2, 64)
	default:
		return strconv.FormatFloat(c.USD, 'f', 4, 64)
	}
}

func roundDuration(d time.Duration) time.Duration {
	if d >= time.Minute {
		return d.Round(time.Second)
	}
	return d.Round(100 * time.Millisecond)
}

func roundLatency(d time.Duration) time.Duration { return d.Round(100 * time.Millisecond) }
