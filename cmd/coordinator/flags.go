package main

import (
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/trialcat/trialcat/internal/engine"
)

// setting is one flag of a run's settings and where its value goes in engine.Options. Each flag
// is declared once, here; a command takes the groups that apply to it, and a setting a command
// does not take keeps engine.DefaultOptions' value.
type setting struct {
	flag cli.Flag
	set  func(c *cli.Context, o *engine.Options)
}

// group is a set of settings shown under one heading of the help.
type group []setting

// The help headings of the run's flags.
const (
	catInput    = "Input and output"
	catModel    = "Model and prompt"
	catRequests = "Requests, limits and cost"
	catBatches  = "Batches"
	catLocal    = "This machine's workers"
	catDisplay  = "Progress and logs"
	catConfig   = "Settings file"
	catAgent    = "Agent (the model reads each record with tools)"
)

// inputGroup: what to read and where the run folder is.
func inputGroup() group {
	return group{
		{&cli.StringFlag{Name: "input", Aliases: []string{"i"}, Category: catInput, Usage: "the `FILE` of records: a JSON array, JSON Lines, a ClinicalTrials.gov API v2 page or CSV with a header"},
			func(c *cli.Context, o *engine.Options) { o.Input = c.String("input") }},
		outSetting("the run folder `DIR` (batch files, results, summary)"),
		{&cli.StringFlag{Name: "id-field", Category: catInput, Usage: "dotted `PATH` of the record ID", DefaultText: "nct_id, nctId, NCTId or protocolSection.identificationModule.nctId"},
			func(c *cli.Context, o *engine.Options) { o.IDField = c.String("id-field") }},
		{&cli.BoolFlag{Name: "dedupe", Category: catInput, Usage: "keep the first of records with the same ID instead of refusing the input"},
			func(c *cli.Context, o *engine.Options) { o.Dedupe = c.Bool("dedupe") }},
		{&cli.StringFlag{Name: "since-run", Category: catInput, Usage: "an earlier run's `DIR`: a record whose content has not changed since takes its answer there, with no request (source carried)"},
			func(c *cli.Context, o *engine.Options) { o.SinceRun = c.String("since-run") }},
	}
}

func outSetting(usage string) setting {
	defaults := engine.DefaultOptions()
	return setting{&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Value: defaults.Out, Category: catInput, Usage: usage},
		func(c *cli.Context, o *engine.Options) { o.Out = c.String("out") }}
}

// batchGroup: how the input is cut into batch files.
func batchGroup() group {
	defaults := engine.DefaultOptions()
	return group{
		{&cli.IntFlag{Name: "workers", Aliases: []string{"w"}, Value: defaults.Workers, Category: catBatches, Usage: "worker processes running at once (and batches, unless --batches)"},
			func(c *cli.Context, o *engine.Options) { o.Workers = c.Int("workers") }},
		{&cli.StringFlag{Name: "batches", Category: catBatches, DefaultText: "one per worker",
			Usage: "`N` batches (at least --workers; a worker takes the next batch as it finishes one), or auto (guided self-scheduling)"},
			func(c *cli.Context, o *engine.Options) { o.Batches = c.String("batches") }},
		{&cli.BoolFlag{Name: "fresh", Category: catBatches, Usage: "start over: move the previous run's files in --out to OUT/previous-<time>/"},
			func(c *cli.Context, o *engine.Options) { o.Fresh = c.Bool("fresh") }},
	}
}

// modelGroup: who answers and what they are asked, and how (the agent's settings).
func modelGroup() group {
	return append(askGroup(), agentGroup()...)
}

// agentGroup: --agent and its limits, tools and transcripts.
func agentGroup() group {
	defaults := engine.DefaultOptions()
	return group{
		{&cli.BoolFlag{Name: "agent", Category: catAgent,
			Usage: "work each record through a tool loop: the model sees an overview, reads the sections it needs and answers through a strict submit tool"},
			func(c *cli.Context, o *engine.Options) { o.Agent = c.Bool("agent") }},
		{&cli.IntFlag{Name: "agent-max-turns", Value: defaults.AgentMaxTurns, Category: catAgent, Usage: "requests per record's loop before --agent-fallback"},
			func(c *cli.Context, o *engine.Options) { o.AgentMaxTurns = c.Int("agent-max-turns") }},
		{&cli.Int64Flag{Name: "agent-max-tokens", Value: defaults.AgentMaxTokens, Category: catAgent, Usage: "prompt plus completion tokens per record's loop before --agent-fallback (0: no bound)"},
			func(c *cli.Context, o *engine.Options) { o.AgentMaxTokens = c.Int64("agent-max-tokens") }},
		{&cli.StringFlag{Name: "agent-fallback", Value: defaults.AgentFallback, Category: catAgent, Usage: "a record that reaches a limit: one-shot (asked once with the one-shot prompt) or fail (status agent_limit)"},
			func(c *cli.Context, o *engine.Options) { o.AgentFallback = c.String("agent-fallback") }},
		{&cli.StringSliceFlag{Name: "mcp", Category: catAgent, Usage: "`'COMMAND ARGS'` of an MCP server (stdio) each worker starts; its tools are offered beside the built-ins (repeatable)"},
			func(c *cli.Context, o *engine.Options) { o.MCP = c.StringSlice("mcp") }},
		{&cli.StringFlag{Name: "transcripts", Value: defaults.Transcripts, Category: catAgent, Usage: "on: each turn's tool calls, sizes, tokens and latency in OUT/transcripts/worker_N.jsonl; off"},
			func(c *cli.Context, o *engine.Options) { o.Transcripts = c.String("transcripts") }},
	}
}

// askGroup: who answers and what they are asked.
func askGroup() group {
	defaults := engine.DefaultOptions()
	return group{
		{&cli.StringFlag{Name: "provider", Value: defaults.Provider, Category: catModel, Usage: "auto (openai when OPENAI_API_KEY is set, else offline), openai or offline"},
			func(c *cli.Context, o *engine.Options) { o.Provider = c.String("provider") }},
		{&cli.StringFlag{Name: "model", Value: defaults.Model, Category: catModel, Usage: "model `NAME`"},
			func(c *cli.Context, o *engine.Options) { o.Model = c.String("model") }},
		{&cli.StringFlag{Name: "base-url", Category: catModel, Usage: "OpenAI-compatible API base `URL`", DefaultText: "OPENAI_BASE_URL, else OpenAI"},
			func(c *cli.Context, o *engine.Options) { o.BaseURL = c.String("base-url") }},
		{&cli.StringFlag{Name: "reasoning-effort", Category: catModel, Usage: "reasoning effort of reasoning models (minimal, low, medium, high)", DefaultText: "the model's"},
			func(c *cli.Context, o *engine.Options) { o.ReasoningEffort = c.String("reasoning-effort") }},
		{&cli.Float64Flag{Name: "temperature", Category: catModel, Usage: "sampling temperature; sent only when given, never to reasoning models", DefaultText: "not sent"},
			func(c *cli.Context, o *engine.Options) {
				if c.IsSet("temperature") {
					t := c.Float64("temperature")
					o.Temperature = &t
				}
			}},
		{&cli.Int64Flag{Name: "max-completion-tokens", Category: catModel, Usage: "cap on output tokens per request", DefaultText: "the model's"},
			func(c *cli.Context, o *engine.Options) { o.MaxCompletionTokens = c.Int64("max-completion-tokens") }},
		{&cli.IntFlag{Name: "max-input-tokens", Category: catModel, Usage: "a record whose prompt is longer fails as too_long without a request", DefaultText: "the model's input window when known"},
			func(c *cli.Context, o *engine.Options) { o.MaxInputTokens = c.Int("max-input-tokens") }},
		{&cli.StringFlag{Name: "prompt", Category: catModel, Usage: "prompt template `FILE` (Go text/template)", DefaultText: "the embedded clinical-trial prompt"},
			func(c *cli.Context, o *engine.Options) { o.PromptFile = c.String("prompt") }},
		{&cli.StringFlag{Name: "schema", Category: catModel, Usage: "JSON Schema `FILE` of the answer; each top-level property becomes a column", DefaultText: "the embedded clinical-trial categories"},
			func(c *cli.Context, o *engine.Options) { o.SchemaFile = c.String("schema") }},
		{&cli.StringFlag{Name: "priority-ids", Category: catModel, Usage: "`FILE` of record IDs (one a line) answered by --priority-model"},
			func(c *cli.Context, o *engine.Options) { o.PriorityIDsFile = c.String("priority-ids") }},
		{&cli.StringFlag{Name: "priority-model", Category: catModel, Usage: "model `NAME` for the records in --priority-ids"},
			func(c *cli.Context, o *engine.Options) { o.PriorityModel = c.String("priority-model") }},
		{&cli.StringFlag{Name: "cascade", Category: catModel, DefaultText: "off",
			Usage: "`MODELS`, cheapest first, comma-separated: each record is answered by the first and handed to the next only while doubtful (a field below --confidence, a contradiction of the record's own fields, an invalid answer); replaces --model"},
			func(c *cli.Context, o *engine.Options) {
				for _, m := range strings.Split(c.String("cascade"), ",") {
					if m = strings.TrimSpace(m); m != "" {
						o.Cascade = append(o.Cascade, m)
					}
				}
			}},
		{&cli.Float64Flag{Name: "confidence", Category: catModel, Value: engine.DefaultConfidence,
			Usage: "with --cascade and --votes, the least share of the votes a field's answer may have before the next model is asked"},
			func(c *cli.Context, o *engine.Options) { o.Confidence = c.Float64("confidence") }},
		{&cli.StringFlag{Name: "escalate-model", Category: catModel, Usage: "model `NAME` that retries a record whose answers failed validation twice", DefaultText: "off"},
			func(c *cli.Context, o *engine.Options) { o.EscalateModel = c.String("escalate-model") }},
		{&cli.StringFlag{Name: "prices", Category: catModel, Usage: "JSON `FILE` of model prices (USD per 1M tokens) adding to or replacing the embedded table"},
			func(c *cli.Context, o *engine.Options) { o.PricesFile = c.String("prices") }},
	}
}

// requestGroup: how requests are sent, limited, retried, paid for and cached.
func requestGroup() group {
	defaults := engine.DefaultOptions()
	return group{
		{&cli.IntFlag{Name: "concurrency", Value: defaults.Concurrency, Category: catRequests, Usage: "requests in flight per worker"},
			func(c *cli.Context, o *engine.Options) { o.Concurrency = c.Int("concurrency") }},
		{&cli.IntFlag{Name: "rpm", Category: catRequests, Usage: "requests per minute for the whole run", DefaultText: "unlimited"},
			func(c *cli.Context, o *engine.Options) { o.RPM = c.Int("rpm") }},
		{&cli.IntFlag{Name: "tpm", Category: catRequests, Usage: "tokens per minute for the whole run", DefaultText: "unlimited"},
			func(c *cli.Context, o *engine.Options) { o.TPM = c.Int("tpm") }},
		{&cli.IntFlag{Name: "max-attempts", Value: defaults.MaxAttempts, Category: catRequests, Usage: "attempts per record, across worker restarts"},
			func(c *cli.Context, o *engine.Options) { o.MaxAttempts = c.Int("max-attempts") }},
		{&cli.DurationFlag{Name: "timeout", Category: catRequests, Usage: "timeout per attempt",
			DefaultText: engine.DefaultTimeout.String() + ", " + engine.DefaultFlexTimeout.String() + " with --service-tier flex"},
			func(c *cli.Context, o *engine.Options) { o.Timeout = c.Duration("timeout") }},
		{&cli.IntFlag{Name: "votes", Category: catRequests, DefaultText: "1",
			Usage: "ask each record `K` times and keep each category's majority, with its share of the votes as <field>_confidence"},
			func(c *cli.Context, o *engine.Options) { o.Votes = c.Int("votes") }},
		{&cli.Float64Flag{Name: "hedge", Category: catRequests, DefaultText: "off",
			Usage: "`P`: once no batch is left, idle workers' slots re-send requests running past their own median latency (first answer wins), at most P% of the records"},
			func(c *cli.Context, o *engine.Options) { o.Hedge = c.Float64("hedge") }},
		{&cli.Float64Flag{Name: "max-cost", Category: catRequests, DefaultText: "off",
			Usage: "budget in `USD` for the whole run: when spend reaches it no new requests start, the run merges and exits 1"},
			func(c *cli.Context, o *engine.Options) { o.MaxCostUSD = c.Float64("max-cost") }},
		{&cli.StringFlag{Name: "cache", EnvVars: []string{"TRIALCAT_CACHE"}, Category: catRequests, DefaultText: "off",
			Usage: "response cache `DIR` (or auto: the user's cache folder): a request asked before with the same prompt, model and settings is answered from it at no cost"},
			func(c *cli.Context, o *engine.Options) { o.Cache = c.String("cache") }},
		{&cli.StringFlag{Name: "service-tier", Category: catRequests, DefaultText: "not sent: the project's",
			Usage: "`TIER` of live requests: flex (Batch API prices, slower, may be refused), default, priority or auto"},
			func(c *cli.Context, o *engine.Options) { o.ServiceTier = c.String("service-tier") }},
		{&cli.IntFlag{Name: "flex-fallback", Value: defaults.FlexFallback, Category: catRequests,
			Usage: "with --service-tier flex, send a request on the default tier once flex refused it `N` times (0: keep waiting for flex)"},
			func(c *cli.Context, o *engine.Options) { o.FlexFallback = c.Int("flex-fallback") }},
		{&cli.StringFlag{Name: "prompt-cache-key", Category: catRequests, DefaultText: "derived from the run's prompt, schema and model",
			Usage: "`KEY` sent as prompt_cache_key, so requests sharing the static prefix meet the provider's cache; off sends none"},
			func(c *cli.Context, o *engine.Options) { o.PromptCacheKey = c.String("prompt-cache-key") }},
		{&cli.StringFlag{Name: "cache-retention", Category: catRequests, DefaultText: "not sent: the provider's",
			Usage: "`HOW` long the provider keeps the cached prefix: in_memory or 24h (prompt_cache_retention, for the models that offer it)"},
			func(c *cli.Context, o *engine.Options) { o.CacheRetention = c.String("cache-retention") }},
		{&cli.StringFlag{Name: "backend", Value: defaults.Backend, Category: catRequests, Usage: "live (request by request) or batch-api (the OpenAI Batch API: half the price, answers within 24 hours)"},
			func(c *cli.Context, o *engine.Options) { o.Backend = c.String("backend") }},
		{&cli.IntFlag{Name: "batch-max-requests", Category: catRequests, DefaultText: "50,000, the most",
			Usage: "with --backend batch-api, at most `N` requests per input file; lower it to stay under a model's enqueued-token limit"},
			func(c *cli.Context, o *engine.Options) { o.BatchMaxRequests = c.Int("batch-max-requests") }},
		{&cli.Int64Flag{Name: "batch-max-bytes", Category: catRequests, Hidden: true, DefaultText: "200 MB, the most",
			Usage: "with --backend batch-api, at most this many bytes per input file"},
			func(c *cli.Context, o *engine.Options) { o.BatchMaxBytes = c.Int64("batch-max-bytes") }},
		{&cli.DurationFlag{Name: "batch-poll", Category: catRequests, Hidden: true, DefaultText: "5s",
			Usage: "with --backend batch-api, the first interval of the status polls (backing off to 12 times it)"},
			func(c *cli.Context, o *engine.Options) { o.BatchPoll = c.Duration("batch-poll") }},
	}
}

// workerBinSetting: where the worker binary is, for the commands that start workers here.
func workerBinSetting() setting {
	return setting{&cli.StringFlag{Name: "worker-bin", Category: catLocal, Usage: "worker binary `PATH`", DefaultText: "beside the coordinator, then on PATH"},
		func(c *cli.Context, o *engine.Options) { o.WorkerBin = c.String("worker-bin") }}
}

// localGroup: how this machine's worker processes are kept.
func localGroup() group {
	defaults := engine.DefaultOptions()
	return group{
		workerBinSetting(),
		{&cli.IntFlag{Name: "max-restarts", Value: defaults.MaxRestarts, Category: catLocal, Usage: "restarts of a crashed worker per batch"},
			func(c *cli.Context, o *engine.Options) { o.MaxRestarts = c.Int("max-restarts") }},
		{&cli.DurationFlag{Name: "grace", Value: defaults.Grace, Category: catLocal, Usage: "how long a stopping worker may take before it is killed"},
			func(c *cli.Context, o *engine.Options) { o.Grace = c.Duration("grace") }},
		{&cli.DurationFlag{Name: "stall-after", Value: defaults.StallAfter, Category: catLocal, Usage: "kill and restart a worker not heard from for this long (stopped, deadlocked, a hung file system)"},
			func(c *cli.Context, o *engine.Options) { o.StallAfter = c.Duration("stall-after") }},
		{&cli.StringFlag{Name: "stream", Category: catDisplay, DefaultText: "off",
			Usage: "- : write each answered record as a JSON line to stdout as it lands (the summary goes to stderr); OUT/results.jsonl always gets them"},
			func(c *cli.Context, o *engine.Options) { o.Stream = c.String("stream") }},
	}
}

// displayGroup: the progress display and the log, which change nothing in the run folder.
func displayGroup() group {
	return group{
		{&cli.StringFlag{Name: "progress", Value: "auto", Category: catDisplay, Usage: "auto (bars on a terminal, else plain lines), tty, plain or off"}, nil},
		progressEverySetting(),
		logLevelSetting(),
	}
}

func progressEverySetting() setting {
	return setting{&cli.DurationFlag{Name: "progress-every", Value: engine.DefaultProgressEvery, Category: catDisplay, Usage: "interval of the plain progress line"},
		func(c *cli.Context, o *engine.Options) { o.ProgressEvery = c.Duration("progress-every") }}
}

func logLevelSetting() setting {
	return setting{&cli.StringFlag{Name: "log-level", Value: "info", Category: catDisplay, Usage: "trace, debug, info, warn or error"}, nil}
}

// settings joins groups into a command's settings.
func settings(groups ...group) group {
	var all group
	for _, g := range groups {
		all = append(all, g...)
	}
	return all
}

// flags are the command-line flags of the settings.
func (g group) flags() []cli.Flag {
	fl := make([]cli.Flag, 0, len(g))
	for _, s := range g {
		fl = append(fl, s.flag)
	}
	return fl
}

// options are the defaults with the settings of g read from c.
func (g group) options(c *cli.Context) engine.Options {
	o := engine.DefaultOptions()
	for _, s := range g {
		if s.set != nil {
			s.set(c, &o)
		}
	}
	return o
}

// latencyFlag is estimate's own.
var latencyFlag = &cli.DurationFlag{Name: "latency", Category: catRequests,
	Usage: "per-request latency to assume; measure it and set it", DefaultText: "a rough figure per model family"}
