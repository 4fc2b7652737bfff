package engine

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/trialcat/trialcat/internal/agent"
	"github.com/trialcat/trialcat/internal/display"
	"github.com/trialcat/trialcat/internal/exitcode"
	"github.com/trialcat/trialcat/internal/llm"
	"github.com/trialcat/trialcat/internal/runspec"
	"github.com/trialcat/trialcat/internal/slurm"
)

// Options are the coordinator's flags.
type Options struct {
	Input   string
	Out     string
	Workers int
	// Batches is "" (one batch per worker, the design's static split), "auto" (guided
	// self-scheduling) or a number of batches >= Workers.
	Batches string
	IDField string
	Dedupe  bool

	Provider            string // auto, openai or offline
	Model               string
	BaseURL             string
	ReasoningEffort     string
	Temperature         *float64
	MaxCompletionTokens int64
	PromptFile          string
	SchemaFile          string
	PriorityIDsFile     string
	PriorityModel       string
	EscalateModel       string
	PricesFile          string
	MaxCostUSD          float64

	MaxAttempts int
	Timeout     time.Duration
	Concurrency int
	// Hedge is --hedge P: once no batch is left to hand out, the request slots of idle workers
	// send a second copy of requests running past the run's p90 latency, at most P percent of
	// the records (0: off).
	Hedge          float64
	RPM, TPM       int
	MaxInputTokens int
	MaxRestarts    int
	Fresh          bool
	WorkerBin      string
	Grace          time.Duration
	ProgressEvery  time.Duration
	// StallAfter is how long a worker may go unheard (no line at all: stopped, deadlocked) before
	// it is killed and restarted; 0 means DefaultStallAfter.
	StallAfter time.Duration

	// Backend is live (request by request) or batch-api (the OpenAI Batch API, half price,
	// within 24 hours); "" means live.
	Backend string
	// BatchPoll, BatchMaxRequests and BatchMaxBytes tune the Batch API backend (0: defaults).
	BatchPoll        time.Duration
	BatchMaxRequests int
	BatchMaxBytes    int64

	// Cache is the response cache's folder, or "auto" for the user's cache folder; "" means
	// none.
	Cache string

	// Agent works each record through the tool loop (--agent): the model reads the record's
	// sections with tools and answers through a strict submit tool.
	Agent bool
	// AgentMaxTurns and AgentMaxTokens bound one record's loop (0: the defaults; tokens 0
	// after defaults: no bound); AgentFallback is one-shot or fail.
	AgentMaxTurns  int
	AgentMaxTokens int64
	AgentFallback  string
	// MCP are command lines of MCP servers (stdio) each worker starts; their tools are
	// offered to the model beside the built-ins.
	MCP []string
	// Transcripts is on or off: OUT/transcripts/worker_N.jsonl, a line per turn.
	Transcripts string

	// Votes asks each record this many times and keeps each field's majority (0 or 1: once).
	Votes int

	// Cascade lists the models of --cascade, cheapest first: each record is answered by the first
	// and handed to the next only while its answer is doubtful; it replaces Model.
	Cascade []string
	// Confidence is --confidence: a voted field with a smaller share of the votes is doubtful.
	Confidence float64

	// SinceRun is an earlier run's folder (--since-run): records whose content has not changed
	// since take its answers without a request.
	SinceRun string

	// ServiceTier is --service-tier (flex, default, priority or auto; "" sends none);
	// FlexFallback the flex refusals of one request after which it goes on the default tier
	// (0: never).
	ServiceTier  string
	FlexFallback int
	// PromptCacheKey is --prompt-cache-key: "" derives one from the run's settings, "off" sends
	// none. CacheRetention is --cache-retention (in_memory or 24h; "" sends none).
	PromptCacheKey string
	CacheRetention string

	// Stream is "-" to write each answered record's JSON line to Deps.StreamTo (standard
	// output) as well as to results.jsonl.
	Stream string

	// keepFailures leaves an earlier pass's failures in place on a resume (a scheduler's
	// command retries them per batch, never under a running task).
	keepFailures bool
	// exportOnly splits a run whose requests will be exported, not sent: no key is needed.
	exportOnly bool
}

// Deps are the coordinator's connections to the outside world.
type Deps struct {
	Log        hclog.Logger
	Stdout     io.Writer // the human summary
	Getenv     func(string) string
	Executable func() (string, error)
	LookPath   func(string) (string, error)
	// HardStop, when it fires, kills every worker at once (a second Ctrl-C).
	HardStop <-chan struct{}
	Now      func() time.Time
	// Display draws live progress from the run's tally; nil shows none.
	Display *display.Display
	// Environ is the environment of the scheduler commands (sbatch hands it to the tasks).
	Environ func() []string
	// Slurm runs Slurm's commands; nil runs the real ones with Environ.
	Slurm slurm.Runner
	// StreamTo gets a copy of results.jsonl's lines with --stream - (standard output; the
	// human summary then goes to Stdout, which the main points at standard error).
	StreamTo io.Writer
}

func (d *Deps) defaults() {
	if d.Log == nil {
		d.Log = hclog.NewNullLogger()
	}
	if d.Stdout == nil {
		d.Stdout = io.Discard
	}
	if d.Getenv == nil {
		d.Getenv = os.Getenv
	}
	if d.Executable == nil {
		d.Executable = os.Executable
	}
	if d.LookPath == nil {
		d.LookPath = exec.LookPath
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Environ == nil {
		d.Environ = os.Environ
	}
	if d.Slurm == nil {
		d.Slurm = slurm.Exec{Env: d.Environ()}
	}
}

// Defaults for flags.
const (
	DefaultModel       = "gpt-5-mini"
	DefaultOut         = "output"
	DefaultMaxAttempts = 5
	DefaultTimeout     = 120 * time.Second
	// DefaultFlexTimeout is the per-attempt timeout of a --service-tier flex run without
	// --timeout: flex answers may queue, and OpenAI advises waiting up to 15 minutes.
	DefaultFlexTimeout = 15 * time.Minute
	// DefaultFlexFallback is --flex-fallback's default.
	DefaultFlexFallback = 3
	DefaultMaxRestarts  = 3
	DefaultGrace        = 10 * time.Second
	DefaultStallAfter   = 60 * time.Second
	DefaultWorkers      = 20
	// DefaultConfidence is --confidence's default: with 3 votes a 2-to-1 majority passes, a
	// three-way split does not.
	DefaultConfidence = 0.6
	// DefaultProgressEvery is the interval of the plain progress line.
	DefaultProgressEvery = 10 * time.Second
)

// DefaultOptions are the settings of a run whose flags are all left out: what the command line
// starts from, and what a command that takes only some of the run's flags keeps for the rest.
func DefaultOptions() Options {
	return Options{
		Out: DefaultOut, Workers: DefaultWorkers, Concurrency: 1, Provider: "auto", Model: DefaultModel,
		Backend: runspec.BackendLive, MaxAttempts: DefaultMaxAttempts, FlexFallback: DefaultFlexFallback,
		MaxRestarts: DefaultMaxRestarts, Grace: DefaultGrace, StallAfter: DefaultStallAfter,
		ProgressEvery: DefaultProgressEvery,
		AgentMaxTurns: agent.DefaultMaxTurns, AgentMaxTokens: agent.DefaultMaxTokens,
		AgentFallback: runspec.AgentFallbackOneShot, Transcripts: "on", Confidence: DefaultConfidence,
	}
}

func usagef(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, exitcode.ErrUsage)...)
}

func (o *Options) check() error {
	// The agent's settings left at zero (a program filling Options by hand) mean the defaults.
	if o.AgentFallback == "" {
		o.AgentFallback = runspec.AgentFallbackOneShot
	}
	if o.Transcripts == "" {
		o.Transcripts = "on"
	}
	if o.AgentMaxTurns == 0 {
		o.AgentMaxTurns = agent.DefaultMaxTurns
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
		if o.ServiceTier == llm.TierFlex {
			o.Timeout = DefaultFlexTimeout
		}
	}
	if err := o.checkDelivery(); err != nil {
		return err
	}
	switch {
	case o.Input == "":
		return usagef("--input is required: the JSON, JSON Lines or CSV file of records to categorize")
	case o.Workers < 1:
		return usagef("--workers %d: need at least 1 worker", o.Workers)
	case o.Workers > 1000:
		return usagef("--workers %d: more than 1000 processes is not supported; use --concurrency for more requests in flight", o.Workers)
	case o.MaxAttempts < 1:
		return usagef("--max-attempts %d: need at least 1", o.MaxAttempts)
	case o.Concurrency < 1:
		return usagef("--concurrency %d: need at least 1 request in flight per worker", o.Concurrency)
	case o.Timeout < 0:
		return usagef("--timeout %s: need a positive per-attempt timeout such as 120s", o.Timeout)
	case o.MaxRestarts < 0:
		return usagef("--max-restarts %d: cannot be negative", o.MaxRestarts)
	case o.RPM < 0 || o.TPM < 0:
		return usagef("--rpm and --tpm cannot be negative (0 means unlimited)")
	case o.StallAfter < 0:
		return usagef("--stall-after %s: cannot be negative", o.StallAfter)
	case o.MaxCostUSD < 0:
		return usagef("--max-cost %v: cannot be negative (0 means no budget)", o.MaxCostUSD)
	case o.Hedge < 0 || o.Hedge > 100:
		return usagef("--hedge %v: a percent of the records, 0 (off) to 100; 5 is a good start", o.Hedge)
	case o.Hedge > 0 && o.Backend == runspec.BackendBatchAPI:
		return usagef("--hedge copies live requests that run long; the Batch API runs a batch as a whole: drop --hedge or use --backend live")
	case o.Votes < 0 || o.Votes > 9:
		return usagef("--votes %d: want 1 to 9 answers per record (3 is a good start)", o.Votes)
	case len(o.Cascade) == 1 || (len(o.Cascade) > 1 && slices.Contains(o.Cascade[1:], o.Cascade[0])):
		return usagef("--cascade %s: want two or more different models, cheapest first (such as gpt-5-nano,gpt-5)", strings.Join(o.Cascade, ","))
	case len(o.Cascade) > 0 && (o.Agent || o.Backend == runspec.BackendBatchAPI):
		return usagef("--cascade asks live one-shot requests model after model: drop --agent or --backend batch-api")
	case len(o.Cascade) > 0 && (o.Confidence <= 0 || o.Confidence > 1):
		return usagef("--confidence %v: want a share of the votes above 0 and at most 1 (%.1f is the default)", o.Confidence, DefaultConfidence)
	case o.Votes > 1 && o.Agent:
		return usagef("--votes asks the one-shot prompt several times; with --agent each vote would be a whole loop, which this version does not do: drop one")
	case o.Votes > 1 && o.Backend == runspec.BackendBatchAPI:
		return usagef("--votes asks each record several times in live requests; the Batch API backend does not: drop --votes or use --backend live")
	case o.Agent && o.Backend == runspec.BackendBatchAPI:
		return usagef("--agent works each record over several live turns; the Batch API answers each request once, hours later: drop --agent, or use --backend live")
	case o.Agent && o.Hedge > 0:
		return usagef("--hedge copies one request running long; an agent record is a loop of short requests, which --hedge does not copy: drop --hedge or --agent")
	case o.SinceRun != "" && filepath.Clean(o.SinceRun) == filepath.Clean(o.Out):
		return usagef("--since-run %s is this run's own --out: give the earlier run's folder", o.SinceRun)
	case !o.Agent && len(o.MCP) > 0:
		return usagef("--mcp offers an MCP server's tools to the agent: add --agent")
	case o.Agent && (o.AgentMaxTurns < 1 || o.AgentMaxTurns > 100):
		return usagef("--agent-max-turns %d: want 1 to 100 requests per record (%d is the default)", o.AgentMaxTurns, agent.DefaultMaxTurns)
	case o.AgentMaxTokens < 0:
		return usagef("--agent-max-tokens %d: cannot be negative (0 means no bound)", o.AgentMaxTokens)
	case o.AgentFallback != runspec.AgentFallbackOneShot && o.AgentFallback != runspec.AgentFallbackFail:
		return usagef("--agent-fallback %q: want one-shot (ask the one-shot prompt once more) or fail (status agent_limit)", o.AgentFallback)
	case o.Transcripts != "on" && o.Transcripts != "off":
		return usagef("--transcripts %q: want on or off", o.Transcripts)
	case (o.PriorityIDsFile == "") != (o.PriorityModel == ""):
		return usagef("--priority-ids and --priority-model go together: the IDs in the file are answered by that model")
	}
	switch o.Provider {
	case "auto", "openai", "offline":
	default:
		return usagef("--provider %q: want auto, openai or offline", o.Provider)
	}
	switch o.Backend {
	case "", runspec.BackendLive, runspec.BackendBatchAPI:
	default:
		return usagef("--backend %q: want live or batch-api", o.Backend)
	}
	if o.Stream != "" && o.Stream != "-" {
		return usagef("--stream %q: only - (standard output) is supported; results.jsonl in --out is always written", o.Stream)
	}
	if o.BatchMaxRequests < 0 || o.BatchMaxBytes < 0 || o.BatchPoll < 0 {
		return usagef("--batch-max-requests, --batch-max-bytes and --batch-poll cannot be negative")
	}
	if _, err := o.batchCount(); err != nil {
		return err
	}
	return nil
}

// checkDelivery checks the settings that steer only price and speed: the service tier and the
// prompt cache.
func (o *Options) checkDelivery() error {
	switch o.ServiceTier {
	case "", llm.TierFlex, llm.TierDefault, llm.TierPriority, llm.TierAuto:
	default:
		return usagef("--service-tier %q: want flex (Batch API prices, slower, may be refused), default, priority or auto", o.ServiceTier)
	}
	if o.ServiceTier != "" && o.Backend == runspec.BackendBatchAPI {
		return usagef("--service-tier chooses the tier of live requests; the Batch API has its own price and window: drop one")
	}
	if o.FlexFallback < 0 {
		return usagef("--flex-fallback %d: cannot be negative (0 keeps a refused request on flex)", o.FlexFallback)
	}
	switch o.CacheRetention {
	case "", "in_memory", "24h":
	case "in-memory":
		o.CacheRetention = "in_memory"
	default:
		return usagef("--cache-retention %q: want in_memory (the provider's default) or 24h (for the models that offer it)", o.CacheRetention)
	}
	if len(o.PromptCacheKey) > 1024 {
		return usagef("--prompt-cache-key is %d bytes: keep it short (an ID for the run's static prefix)", len(o.PromptCacheKey))
	}
	return nil
}

// batchCount returns the number of static batches wanted, or 0 for guided scheduling.
func (o *Options) batchCount() (int, error) {
	switch b := strings.TrimSpace(o.Batches); b {
	case "":
		return o.Workers, nil
	case "auto":
		return 0, nil
	default:
		n, err := strconv.Atoi(b)
		if err != nil || n < 1 {
			return 0, usagef("--batches %q: want auto or a whole number of batches (at least --workers)", o.Batches)
		}
		if n < o.Workers {
			return 0, usagef("--batches %d is fewer than --workers %d: use at least one batch per worker", n, o.Workers)
		}
		return n, nil
	}
}

func (o *Options) batchMode() string {
	if o.Batches == "" {
		return "equal"
	}
	return o.Batches
}
