package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/trialcat/trialcat/internal/batch"
	"github.com/trialcat/trialcat/internal/cache"
	"github.com/trialcat/trialcat/internal/exitcode"
	"github.com/trialcat/trialcat/internal/llm"
	"github.com/trialcat/trialcat/internal/lockfile"
	"github.com/trialcat/trialcat/internal/modelinfo"
	"github.com/trialcat/trialcat/internal/offline"
	"github.com/trialcat/trialcat/internal/prompt"
	"github.com/trialcat/trialcat/internal/ratelimit"
	"github.com/trialcat/trialcat/internal/results"
	"github.com/trialcat/trialcat/internal/rundir"
	"github.com/trialcat/trialcat/internal/runspec"
	"github.com/trialcat/trialcat/internal/schema"
	"github.com/trialcat/trialcat/internal/tokens"
	"github.com/trialcat/trialcat/internal/toolserver"
	"github.com/trialcat/trialcat/internal/wire"
)

// Options are the worker's flags.
type Options struct {
	BatchPath string
	// RunDir and Index name the batch instead of BatchPath: batch Index of the run folder
	// RunDir. Index below 0 means unset: it is then read from SLURM_ARRAY_TASK_ID (a Slurm
	// array task) or JOB_COMPLETION_INDEX (a Kubernetes Indexed Job), so that one command line
	// serves every task of a scheduler.
	RunDir string
	Index  int
	// IndexGiven is set when --index was given on the command line: then a negative Index is
	// a mistake, not "from the scheduler".
	IndexGiven  bool
	RunPath     string // default: run.json beside the batch
	Model       string // overrides run.json
	BaseURL     string // overrides run.json
	Concurrency int    // overrides run.json when > 0
	Events      bool   // write events to stdout and stop when stdin closes (set by the coordinator)
	// Heartbeat is the interval of heartbeat lines with Events; 0 means DefaultHeartbeat.
	Heartbeat time.Duration
	// Export, when set, writes the batch's requests not done yet to this file in the Batch
	// API's input format and exits; Import reads answers in the Batch API's output format
	// from this file into the batch's results. Neither calls the API.
	Export, Import string
	// RateShare, when above 1, says this worker is one of that many running at once under a
	// scheduler: without a limit server it keeps to 1/RateShare of the run's --rpm and --tpm.
	RateShare int
	// Serve keeps the process up for one batch after another, each handed over stdin by an
	// assign line (see package wire); it needs Events and takes no batch of its own.
	Serve bool
}

// Deps are the worker's connections to the outside world.
type Deps struct {
	Stdin      io.Reader // with Events: EOF means the coordinator has gone; the worker stops
	Stdout     io.Writer // events
	Stderr     io.Writer // log lines at info and above
	Getenv     func(string) string
	HTTPClient *http.Client          // nil: llm.NewHTTPClient(), one for all of a serving worker's batches
	Prices     *modelinfo.PriceTable // nil: the embedded table
	// NewProvider, when set, makes each batch's provider from the one run.json names (def):
	// it may wrap it, replace it, or fail the batch. A program embedding the worker answers with
	// a provider of its own here; the engine's tests inject faults. nil uses def.
	NewProvider func(def llm.Provider, files rundir.Worker) (llm.Provider, error)

	// serving holds what a serving worker sets up once for all its batches (nil: each batch
	// sets up everything).
	serving *servingState
}

// servingState is what a serving worker keeps from one batch to the next: the schema and
// templates parsed from run.json (the same text every batch; parsed again only when it differs)
// and whether the soft memory limit is set. Batches run one at a time; the mutex keeps it safe
// whatever calls it.
type servingState struct {
	mu       sync.Mutex
	schemas  map[[2]string]*schema.Schema
	tmpls    map[[2]string]*prompt.Template
	limitSet bool
}

// parseSchema is schema.Parse, once per text in a serving worker.
func (d Deps) parseSchema(text []byte, source string) (*schema.Schema, error) {
	return parsedOnce(d.serving, func(st *servingState) map[[2]string]*schema.Schema { return st.schemas },
		[2]string{string(text), source}, func() (*schema.Schema, error) { return schema.Parse(text, source) })
}

// parsePrompt is prompt.Parse, once per template in a serving worker (a Template is safe for
// concurrent use).
func (d Deps) parsePrompt(source, text string) (*prompt.Template, error) {
	return parsedOnce(d.serving, func(st *servingState) map[[2]string]*prompt.Template { return st.tmpls },
		[2]string{source, text}, func() (*prompt.Template, error) { return prompt.Parse(source, text) })
}

// parsedOnce is parse's result for key, kept in st's map (of) the first time it succeeds; with
// no serving state, parse every time.
func parsedOnce[T any](st *servingState, of func(*servingState) map[[2]string]T, key [2]string, parse func() (T, error)) (T, error) {
	if st == nil {
		return parse()
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	m := of(st)
	if v, ok := m[key]; ok {
		return v, nil
	}
	v, err := parse()
	if err == nil {
		m[key] = v
	}
	return v, err
}

// setSoftLimit sets the soft memory limit after the batch's set-up: once in a serving worker,
// whose batches all need the same (its first batch's set-up decides; the forced collection it
// takes cost ~5 ms a batch).
func (d Deps) setSoftLimit(getenv func(string) string, concurrency int, live bool) {
	if st := d.serving; st != nil {
		st.mu.Lock()
		defer st.mu.Unlock()
		if st.limitSet {
			return
		}
		st.limitSet = true
	}
	softLimit(getenv, concurrency, live)
}

// DefaultHeartbeat is the interval of a worker's heartbeat lines.
const DefaultHeartbeat = 5 * time.Second

// Run processes one batch. It returns nil when every record of the batch was answered or failed
// for good, an error wrapping exitcode.ErrRecordsFailed when some failed, exitcode.ErrFatalAPI
// when the API refused the run, and the context's error when interrupted.
func Run(ctx context.Context, opts Options, deps Deps) error {
	if deps.Getenv == nil {
		deps.Getenv = os.Getenv
	}
	if opts.Serve {
		return serve(ctx, opts, deps)
	}
	var l *link
	if opts.Events && deps.Stdin != nil {
		out := wire.NewWriter(deps.Stdout)
		l = &link{events: out, client: ratelimit.NewClient(out, deps.Stdin)}
	}
	return runOne(ctx, opts, deps, l)
}

// link is a worker's connection to the coordinator that started it: events and permit requests
// out on stdout, grants (and a serving worker's assigns) in on stdin.
type link struct {
	events *wire.Writer
	client *ratelimit.Client

	mu    sync.Mutex
	hedge *hedger // the current batch's, for boost lines
}

// lend passes a boost line to the current batch's hedger (none: nothing to copy).
func (l *link) lend(m wire.Msg) {
	l.mu.Lock()
	h := l.hedge
	l.mu.Unlock()
	if h != nil {
		h.boost(m.Extra, m.Budget, time.Duration(m.P90MS)*time.Millisecond,
			latencyModel{baseMS: m.LatBaseMS, perKTokMS: m.LatPerKTokMS, median: m.LatMedian})
	}
}

func (l *link) setHedger(h *hedger) {
	l.mu.Lock()
	l.hedge = h
	l.mu.Unlock()
}

// serve runs the batches the coordinator assigns, one at a time, until stdin ends between two
// batches (the run has no more: nil), a batch ends with an exit code other than 0 or 1 (that
// batch's error), or ctx ends.
func serve(ctx context.Context, opts Options, deps Deps) error {
	if !opts.Events || deps.Stdin == nil {
		return fmt.Errorf("--serve takes its batches from the coordinator over stdin (with --events); to run one batch by hand use --batch: %w", exitcode.ErrUsage)
	}
	if opts.BatchPath != "" || opts.RunDir != "" || opts.Export != "" || opts.Import != "" {
		return fmt.Errorf("--serve is assigned its batches: give no --batch, --run-dir, --export or --import with it: %w", exitcode.ErrUsage)
	}
	if deps.HTTPClient == nil {
		// One client for every batch: its connections stay open from one batch to the next.
		deps.HTTPClient = llm.NewHTTPClient()
	}
	deps.serving = &servingState{schemas: map[[2]string]*schema.Schema{}, tmpls: map[[2]string]*prompt.Template{}}
	out := wire.NewWriter(deps.Stdout)
	assigns := make(chan string, 1)
	l := &link{events: out}
	l.client = ratelimit.NewClientWith(out, deps.Stdin, func(m wire.Msg) {
		if m.Type == wire.Boost {
			l.lend(m)
			return
		}
		if m.Type != wire.Assign {
			return
		}
		select {
		case assigns <- m.Batch:
		default:
			// The coordinator assigns one batch at a time; a second is a bug there, and
			// blocking here would hold up the grants.
			if deps.Stderr != nil {
				fmt.Fprintf(deps.Stderr, "worker: assigned %s while busy; ignored\n", m.Batch)
			}
		}
	})
	for {
		var path string
		select {
		case path = <-assigns:
		case <-l.client.Done():
			return nil // no more batches
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", context.Cause(ctx), exitcode.ErrInterrupted)
		}
		o := opts
		o.Serve, o.BatchPath = false, path
		err := runOne(ctx, o, deps, l)
		code := exitcode.WorkerCode(err)
		msg := wire.Msg{Type: wire.Finished, Batch: path, Code: code}
		if err != nil {
			msg.Message = err.Error()
		}
		_ = out.Send(msg)
		if code != exitcode.OK && code != exitcode.Failed {
			return err
		}
	}
}

// runOne works on the one batch opts name. With l, it speaks to the coordinator over l; without,
// it takes permits from the run's limit server or its own share of the limits.
func runOne(ctx context.Context, opts Options, deps Deps, l *link) error {
	getenv := deps.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	batchPath, err := ResolveBatch(opts, getenv)
	if err != nil {
		return err
	}
	files, err := rundir.ForBatch(batchPath)
	if err != nil {
		return fmt.Errorf("%w: %w", err, exitcode.ErrUsage)
	}
	runPath := opts.RunPath
	if runPath == "" {
		runPath = files.Dir.Run()
	}
	spec, err := runspec.Load(runPath)
	if err != nil {
		if errors.Is(err, runspec.ErrNoRun) {
			return fmt.Errorf("%w: a worker needs the run.json the coordinator writes beside the batch files; run the coordinator first or pass --run: %w", err, exitcode.ErrUsage)
		}
		return err
	}
	if err := runspec.CheckBaseURL(opts.BaseURL, "--base-url"); err != nil {
		return err
	}
	applyOverrides(spec, opts)
	m := modeOf(opts, spec)

	// One worker per batch: a second one (by hand beside the coordinator's, or two scheduler
	// tasks) would ask every record twice and interleave the files.
	lock, holder, err := lockfile.Acquire(files.Lock)
	if errors.Is(err, lockfile.ErrHeld) {
		return fmt.Errorf("batch %d is being worked on by another worker (pid %s); wait for it to end or stop it: %w", files.Number, holder, exitcode.ErrUsage)
	}
	if err != nil {
		return err
	}
	defer lock.Release()

	if err := batch.Verify(files.Batch, spec.IDField); err != nil {
		return fmt.Errorf("%w; restore it, or start the run over with the coordinator's --fresh", err)
	}

	logFile, err := os.OpenFile(files.Log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	defer logFile.Close()
	log := newLogger(logFile, deps.Stderr, files.Number)

	w, err := newRunner(spec, files, deps, log, m.sends())
	if err != nil {
		log.Error().Err(err).Msg("cannot start")
		if l != nil && errors.Is(err, exitcode.ErrStorage) {
			// Said to the coordinator as a failed write mid-batch is, so the run stops saying why.
			_ = l.events.Send(wire.Msg{Type: wire.Fatal, Worker: files.Number, Class: wire.ClassStorage, Message: err.Error()})
		}
		return err
	}
	defer w.close()
	deps.setSoftLimit(getenv, spec.Concurrency, spec.Provider != runspec.ProviderOffline)

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if l != nil {
		// Under a coordinator: rate permits come over stdin, and stdout carries both the
		// permit requests and the events, one whole line at a time. The coordinator holds
		// our stdin open for its whole life; EOF means it has gone, and we stop.
		client := l.client
		w.events, w.permits = l.events, client
		if w.hedge != nil {
			l.setHedger(w.hedge)
			defer l.setHedger(nil)
		}
		go func() {
			select {
			case <-client.Done():
				cancel(fmt.Errorf("coordinator went away (stdin closed): %w", ratelimit.ErrCoordinatorGone))
			case <-ctx.Done():
			}
		}()
		go w.heartbeat(ctx, opts.Heartbeat)
	} else {
		permits, closeFn := standalonePermits(ctx, spec, files.Dir, opts.RateShare, log)
		defer closeFn()
		w.permits = permits
		if opts.Events {
			w.events = wire.NewWriter(deps.Stdout)
		}
	}
	return m.run(ctx, w, cancel)
}

// limitDialTimeout bounds reaching a run's limit server.
const limitDialTimeout = 5 * time.Second

// standalonePermits is the budget of a worker without a coordinator: the run's limit server when
// one serves the run folder (falling back to the share when it goes away), else this worker's
// share of the run's limit, all of it when run by hand (share 0 or 1).
func standalonePermits(ctx context.Context, spec *runspec.Spec, dir rundir.Dir, share int, log zerolog.Logger) (ratelimit.Permits, func()) {
	share = max(share, 1)
	cfg := ratelimit.Config{RPM: shareOf(spec.RPM, share), TPM: shareOf(spec.TPM, share), OnLearn: func(what string, limit int) {
		log.Info().Int("limit", limit).Str("of", what).Msg("the server says this key allows this many a minute: keeping to it")
	}}
	local := ratelimit.New(cfg)
	shareText := fmt.Sprintf("1/%d of the run's limit (rpm %d, tpm %d)", share, cfg.RPM, cfg.TPM)
	ep, err := ratelimit.LoadEndpoint(dir.Limits())
	if errors.Is(err, os.ErrNotExist) {
		if share > 1 && (spec.RPM > 0 || spec.TPM > 0) {
			log.Info().Msg("keeping to an equal share of the rate limit: " + shareText)
		}
		return local, func() {}
	}
	if err != nil {
		log.Warn().Err(err).Msg("cannot read the limit server's address; keeping to " + shareText)
		return local, func() {}
	}
	client, conn, err := ratelimit.Dial(ctx, ep, limitDialTimeout)
	if err != nil {
		log.Warn().Err(err).Msg("cannot reach the run's limit server; keeping to " + shareText)
		return local, func() {}
	}
	log.Info().Str("address", ep.Address).Msg("taking rate permits from the run's limit server")
	return ratelimit.NewFallback(client, local, func(err error) {
		log.Warn().Err(err).Msg("lost the run's limit server; keeping to " + shareText + " from now on")
	}), func() { conn.Close() }
}

// shareOf is one of k equal shares of limit, rounded down so that k shares never exceed it (but
// at least 1); 0 (unlimited) stays 0.
func shareOf(limit, k int) int {
	if limit <= 0 {
		return 0
	}
	return max(1, limit/k)
}

// IndexVars are the environment variables a scheduler gives each task its index in, in the
// order they are read when --index is not given.
var IndexVars = []string{"SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"}

// ResolveBatch is the batch file opts name: BatchPath, or batch Index (or the scheduler's index
// variable) of RunDir.
func ResolveBatch(opts Options, getenv func(string) string) (string, error) {
	switch {
	case opts.BatchPath != "" && opts.RunDir != "":
		return "", fmt.Errorf("--batch and --run-dir both name a batch; give one: %w", exitcode.ErrUsage)
	case opts.BatchPath != "":
		return opts.BatchPath, nil
	case opts.RunDir == "":
		return "", fmt.Errorf("--batch OUT/batch_N.json or --run-dir OUT is required: the batch to work on (see worker --help): %w", exitcode.ErrUsage)
	}
	idx, from := opts.Index, "--index"
	if opts.IndexGiven && idx < 0 {
		return "", fmt.Errorf("--index %d is not a batch number: want 0 or more (or leave --index out to take it from %s or %s): %w",
			idx, IndexVars[0], IndexVars[1], exitcode.ErrUsage)
	}
	if idx < 0 {
		for _, v := range IndexVars {
			if s := strings.TrimSpace(getenv(v)); s != "" {
				n, err := strconv.Atoi(s)
				if err != nil || n < 0 {
					return "", fmt.Errorf("%s=%q is not a batch number: %w", v, s, exitcode.ErrUsage)
				}
				idx, from = n, v
				break
			}
		}
	}
	if idx < 0 {
		return "", fmt.Errorf("--run-dir %s needs the batch number: --index N, or %s (a Slurm array task) or %s (a Kubernetes Indexed Job) in the environment: %w",
			opts.RunDir, IndexVars[0], IndexVars[1], exitcode.ErrUsage)
	}
	dir := rundir.New(opts.RunDir)
	path := dir.Batch(idx)
	if _, err := os.Stat(path); err != nil {
		have, _ := dir.Batches()
		span := "none"
		if len(have) > 0 {
			span = fmt.Sprintf("%d to %d", have[0], have[len(have)-1])
		}
		return "", fmt.Errorf("batch %d (from %s) is not in %s (its batches: %s); split the run first (coordinator split): %w",
			idx, from, opts.RunDir, span, exitcode.ErrUsage)
	}
	return path, nil
}

func applyOverrides(spec *runspec.Spec, opts Options) {
	if opts.Model != "" {
		spec.Model = opts.Model
	}
	if opts.BaseURL != "" {
		spec.BaseURL = opts.BaseURL
	}
	if opts.Concurrency > 0 {
		spec.Concurrency = opts.Concurrency
	}
	if spec.Concurrency < 1 {
		spec.Concurrency = 1
	}
}

func newLogger(file io.Writer, stderr io.Writer, n int) zerolog.Logger {
	out := file
	if stderr != nil {
		out = zerolog.MultiLevelWriter(file, &zerolog.FilteredLevelWriter{
			Writer: zerolog.LevelWriterAdapter{Writer: stderr},
			Level:  zerolog.InfoLevel,
		})
	}
	return zerolog.New(out).With().Timestamp().Int("worker", n).Logger()
}

type runner struct {
	spec     *runspec.Spec
	files    rundir.Worker
	schema   *schema.Schema
	layout   results.Layout
	tmpl     *prompt.Template
	caller   *llm.Caller
	prices   *modelinfo.PriceTable
	log      zerolog.Logger
	events   *wire.Writer // nil: no coordinator listens
	results  *results.Writer
	failures *results.Writer
	attempts *results.AttemptLog
	prior    map[string]int
	skip     map[string]bool
	priority map[string]bool
	counter  *tokens.Counter
	permits  ratelimit.Permits
	// openai and batchAPI are set with the Batch API backend (whose answers are priced at
	// llm.TierBatch).
	openai   *llm.OpenAI
	batchAPI batchClient
	// hedge, when set (--hedge), copies the requests that run long at the end of the run.
	hedge *hedger
	// cache, when set, answers records asked before (--cache); cacheHost is the server's
	// host, part of every key.
	cache     *cache.Cache
	cacheHost string
	cacheWarn sync.Once
	// outTokens and schemaTokens add to each prompt's count for the --tpm estimate;
	// agentToolTokens to each agent turn's (the tools' definitions).
	outTokens, schemaTokens, agentToolTokens int

	// agent, when set (--agent), works each record through the tool loop.
	agent          *agentState
	transcriptWarn sync.Once
	// toolServers are the batch's MCP servers, stopped with it.
	toolServers []*toolserver.Server
	// carried are an earlier run's answers to this batch's records (--since-run), taken for a
	// record whose content hash is the one they answered.
	carried map[string]results.Carried
	// votes is the --votes journal of the batch's records not done yet.
	votes *votesLog

	// writeMu serializes appends: results.Writer is not safe for concurrent use.
	writeMu sync.Mutex

	mu                          sync.Mutex
	answered, failed, abandoned int64
	// started counts attempts begun by this process, waiting the requests waiting for a permit.
	started, waiting atomic.Int64
	// cancel stops the batch with a cause; reach decides when the server cannot be reached.
	cancel context.CancelCauseFunc
	reach  reachability
}

// newRunner opens batch files' writers and sets up the provider; sends is whether the batch's
// mode sends requests (so the provider needs the API key).
func newRunner(spec *runspec.Spec, files rundir.Worker, deps Deps, log zerolog.Logger, sends bool) (*runner, error) {
	sch, err := deps.parseSchema(spec.Schema, spec.SchemaSource)
	if err != nil {
		return nil, err
	}
	r := &runner{spec: spec, files: files, schema: sch, layout: spec.Layout(sch), log: log, prices: deps.Prices, priority: map[string]bool{}}
	if r.prices == nil {
		r.prices = modelinfo.Prices()
	}
	r.prices = r.prices.With(spec.Prices)
	for _, id := range spec.PriorityIDs {
		r.priority[id] = true
	}
	provider, err := newProvider(spec, sch, deps, sends)
	if err != nil {
		return nil, err
	}
	r.openai, _ = provider.(*llm.OpenAI)
	if spec.Cache != "" && r.openai != nil {
		if r.cache, err = cache.Open(spec.Cache); err != nil {
			return nil, err
		}
		r.cacheHost = cache.Host(spec.BaseURL)
	}
	if spec.IsBatchAPI() {
		if r.openai == nil {
			return nil, fmt.Errorf("run.json asks for the Batch API backend, which needs provider openai (this run's is %s): %w", spec.Provider, exitcode.ErrUsage)
		}
		cfg, _ := openaiConfig(spec, sch, deps, sends)
		r.batchAPI = llm.NewBatchAPI(cfg)
	}
	if deps.NewProvider != nil {
		if provider, err = deps.NewProvider(provider, files); err != nil {
			return nil, err
		}
	}
	if spec.Provider != runspec.ProviderOffline {
		if r.tmpl, err = deps.parsePrompt(spec.PromptSource, spec.Prompt); err != nil {
			return nil, err
		}
		// Counting tokens costs about a millisecond a record, and loading the tokenizer's tables
		// ~90 ms and 15 MB at start: do it only where the count matters (--tpm, or a prompt long
		// enough to overflow the model's window).
		r.counter = tokens.ForModel(spec.Model)
		strict, _ := json.Marshal(sch.StrictJSON())
		r.schemaTokens = len(strict) / 4
		answer := 200 // a rough answer size: without --tpm the estimate only sizes feedback
		if spec.TPM > 0 {
			answer = tokens.AnswerTokens(sch)
			r.schemaTokens = r.counter.Count(string(strict))
		}
		r.outTokens = modelinfo.ExpectedOutput(answer, spec.Model, spec.ReasoningEffort, spec.MaxCompletionTokens).PerRequest
	}
	r.caller = &llm.Caller{
		Provider:    provider,
		Validate:    sch.Validate,
		MaxAttempts: spec.MaxAttempts,
		Backoff:     llm.Backoff{Base: 500 * time.Millisecond, Max: 30 * time.Second, MaxRetryAfter: 60 * time.Second},
		Timeout:     time.Duration(spec.Timeout),
		OnAttempt:   r.onAttempt,
		BeforeAttempt: func(ctx context.Context, id string, attempt int) error {
			if err := r.attempts.Record(id); err != nil {
				return r.writeFailed(files.Attempts, err)
			}
			r.started.Add(1)
			return nil
		},
		EscalateModel: spec.EscalateModel,
		FlexFallback:  spec.FlexFallback,
	}

	if spec.Agent != nil && r.openai == nil {
		return nil, fmt.Errorf("run.json asks for the agent (--agent), which needs provider openai (this run's is %s): %w", spec.Provider, exitcode.ErrUsage)
	}
	if spec.Agent != nil && (spec.IsBatchAPI() || !sends) {
		return nil, fmt.Errorf("an agent run (--agent) asks each record over live turns: it cannot go through the Batch API, export or import: %w", exitcode.ErrUsage)
	}
	if spec.Agent != nil {
		// Hedging copies one long request; an agent record is a loop of short ones (the
		// coordinator refuses --hedge with --agent, and a hand-edited run.json gets none).
		spec.Hedge = 0
		if err := r.startAgent(deps); err != nil {
			r.close()
			return nil, err
		}
	}
	if spec.Hedge > 0 && r.openai != nil && !spec.IsBatchAPI() {
		r.hedge = newHedger(r.caller.Provider, func(ctx context.Context, req llm.Request) error {
			return r.permits.Wait(ctx, (len(req.System)+len(req.User))/4+r.outTokens+r.schemaTokens)
		}, func(id string, age time.Duration) {
			r.log.Info().Str("id", id).Dur("running", age).Msg("hedged: sent a second copy of a request running past the run's p90 latency")
		})
		r.hedge.valid = func(content string) bool {
			_, err := r.caller.Check([]byte(content))
			return err == nil
		}
		r.caller.Provider = r.hedge
	}
	if r.results, err = results.OpenWriter(files.Results, r.layout.Header()); err != nil {
		return nil, err
	}
	if r.failures, err = results.OpenWriter(files.Failures, r.layout.FailureHeader()); err != nil {
		r.close()
		return nil, err
	}
	if r.attempts, r.prior, err = results.OpenAttemptLog(files.Attempts); err != nil {
		r.close()
		return nil, err
	}
	if err := r.loadCarried(); err != nil {
		r.close()
		return nil, err
	}
	r.skip = map[string]bool{}
	for _, p := range []string{files.Results, files.Failures} {
		if _, _, err := results.Read(p, func(row []string) error {
			r.skip[results.RowID(row)] = true
			return nil
		}); err != nil {
			r.close()
			return nil, err
		}
	}
	if err := r.openVotesLog(); err != nil {
		r.close()
		return nil, err
	}
	if r.votes != nil {
		// A vote answered is an attempt that ended: it is not one a crash cut short.
		for id := range r.prior {
			r.prior[id] = max(0, r.prior[id]-r.votes.spentOnVotes(id))
		}
	}
	return r, nil
}

// loadCarried reads the answers carried.jsonl holds for this batch's records (--since-run).
func (r *runner) loadCarried() error {
	if r.spec.SinceRun == "" {
		return nil
	}
	ids := map[string]bool{}
	if err := batch.IDs(r.files.Batch, r.spec.IDField, func(id string) error {
		ids[id] = true
		return nil
	}); err != nil {
		return err
	}
	r.carried = map[string]results.Carried{}
	err := results.ReadCarried(r.files.Dir.Carried(), func(id string) bool { return ids[id] }, func(c results.Carried) error {
		if len(c.Values) == len(r.layout.Columns) {
			r.carried[c.ID] = c
		}
		return nil
	})
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("run.json says --since-run %s, but %s is missing; rerun the coordinator with --since-run: %w", r.spec.SinceRun, r.files.Dir.Carried(), exitcode.ErrUsage)
	}
	return err
}

func newProvider(spec *runspec.Spec, sch *schema.Schema, deps Deps, sends bool) (llm.Provider, error) {
	switch spec.Provider {
	case runspec.ProviderOffline:
		return offline.Provider{}, nil
	case runspec.ProviderOpenAI:
		cfg, err := openaiConfig(spec, sch, deps, sends)
		if err != nil {
			return nil, err
		}
		return llm.NewOpenAI(cfg), nil
	default:
		return nil, fmt.Errorf("run.json names provider %q; want openai or offline: %w", spec.Provider, exitcode.ErrUsage)
	}
}

// openaiConfig is the OpenAI-compatible server of the run, with the key from the environment.
// A mode that sends nothing (export, import) needs no key: its client only builds request
// bodies and reads answers, and has none.
func openaiConfig(spec *runspec.Spec, sch *schema.Schema, deps Deps, sends bool) (llm.OpenAIConfig, error) {
	getenv := deps.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	key := getenv("OPENAI_API_KEY")
	if key == "" && sends {
		return llm.OpenAIConfig{}, fmt.Errorf("OPENAI_API_KEY is not set: this run uses provider openai; export the key in the environment (never as a flag): %w", exitcode.ErrUsage)
	}
	cfg := llm.ForRun(spec, sch, key, spec.FullBaseURL(getenv))
	cfg.HTTPClient = deps.HTTPClient
	return cfg, nil
}

func (r *runner) close() {
	_ = r.events.Flush() // the events posted last
	for _, s := range r.toolServers {
		s.Stop()
	}
	if r.agent != nil {
		r.agent.transcript.close()
	}
	r.votes.close()
	if r.results != nil {
		r.results.Close()
	}
	if r.failures != nil {
		r.failures.Close()
	}
	if r.attempts != nil {
		r.attempts.Close()
	}
}

// heartbeat tells the coordinator every interval that this process is alive and what it has
// done, until ctx ends. A process that is stopped (SIGSTOP), deadlocked or stuck on a hung file
// system sends none, and the coordinator kills it.
func (r *runner) heartbeat(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = DefaultHeartbeat
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.mu.Lock()
		done := r.answered + r.failed
		r.mu.Unlock()
		r.emit(wire.Msg{Type: wire.Heartbeat, Started: r.started.Load(), Done: done, Waiting: r.waiting.Load()})
	}
}
