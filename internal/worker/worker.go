package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/trialcat/trialcat/internal/batch"
	"github.com/trialcat/trialcat/internal/estimate"
	"github.com/trialcat/trialcat/internal/event"
	"github.com/trialcat/trialcat/internal/exitcode"
	"github.com/trialcat/trialcat/internal/llm"
	"github.com/trialcat/trialcat/internal/offline"
	"github.com/trialcat/trialcat/internal/price"
	"github.com/trialcat/trialcat/internal/proc"
	"github.com/trialcat/trialcat/internal/prompt"
	"github.com/trialcat/trialcat/internal/ratelimit"
	"github.com/trialcat/trialcat/internal/record"
	"github.com/trialcat/trialcat/internal/results"
	"github.com/trialcat/trialcat/internal/runspec"
	"github.com/trialcat/trialcat/internal/schema"
	"github.com/trialcat/trialcat/internal/tokens"
)

// Options are the worker's flags.
type Options struct {
	BatchPath   string
	RunPath     string // default: run.json beside the batch
	Model       string // overrides run.json
	BaseURL     string // overrides run.json
	Concurrency int    // overrides run.json when > 0
	Events      bool   // write events to stdout and stop when stdin closes (set by the coordinator)
}

// Deps are the worker's connections to the outside world.
type Deps struct {
	Stdin      io.Reader // with Events: EOF means the coordinator has gone; the worker stops
	Stdout     io.Writer // events
	Stderr     io.Writer // log lines at info and above
	Getenv     func(string) string
	HTTPClient *http.Client // nil: the SDK's default
	Prices     *price.Table // nil: the embedded table
}

// ResultsHeader is the header of worker_N_results.csv and final_results.csv.
func ResultsHeader(idColumn string, s *schema.Schema) []string {
	return results.Header(idColumn, s.Columns())
}

// Run processes one batch. It returns nil when every record of the batch was answered or failed
// for good, an error wrapping exitcode.ErrRecordsFailed when some failed, exitcode.ErrFatalAPI
// when the API refused the run, and the context's error when interrupted.
func Run(ctx context.Context, opts Options, deps Deps) error {
	files, err := FilesFor(opts.BatchPath)
	if err != nil {
		return fmt.Errorf("%w: %w", err, exitcode.ErrUsage)
	}
	runPath := opts.RunPath
	if runPath == "" {
		runPath = filepath.Join(files.Dir, runspec.FileName)
	}
	spec, err := runspec.Load(runPath)
	if err != nil {
		if errors.Is(err, runspec.ErrNoRun) {
			return fmt.Errorf("%w: a worker needs the run.json the coordinator writes beside the batch files; run the coordinator first or pass --run: %w", err, exitcode.ErrUsage)
		}
		return err
	}
	applyOverrides(spec, opts)

	logFile, err := os.OpenFile(files.Log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	defer logFile.Close()
	log := newLogger(logFile, deps.Stderr, files.Number)

	w, err := newRunner(spec, files, deps, log)
	if err != nil {
		log.Error().Err(err).Msg("cannot start")
		return err
	}
	defer w.close()

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if opts.Events && deps.Stdin != nil {
		// Under a coordinator: rate permits come over stdin, and stdout carries both the
		// permit requests and the events, one whole line at a time. The coordinator holds
		// our stdin open for its whole life; EOF means it has gone, and we stop.
		out := &lockedWriter{w: deps.Stdout}
		client := ratelimit.NewClient(out, deps.Stdin)
		w.events, w.permits = event.NewEmitter(out), client
		go func() {
			select {
			case <-client.Done():
				cancel(fmt.Errorf("coordinator went away (stdin closed): %w", ratelimit.ErrCoordinatorGone))
			case <-ctx.Done():
			}
		}()
	} else {
		// Run by hand: this worker has the whole budget to itself.
		w.permits = ratelimit.New(ratelimit.Config{RPM: spec.RPM, TPM: spec.TPM})
		if opts.Events {
			w.events = event.NewEmitter(&lockedWriter{w: deps.Stdout})
		}
	}
	return w.run(ctx, cancel)
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
	var out io.Writer = file
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
	files    Files
	schema   *schema.Schema
	tmpl     *prompt.Template
	caller   *llm.Caller
	prices   *price.Table
	log      zerolog.Logger
	events   *event.Emitter
	results  *results.Writer
	failures *results.Writer
	attempts *attemptLog
	prior    map[string]int
	skip     map[string]bool
	priority map[string]bool
	counter  *tokens.Counter
	permits  ratelimit.Permits
	// outTokens and schemaTokens add to each prompt's count for the --tpm estimate.
	outTokens, schemaTokens int

	// writeMu serializes appends: results.Writer is not safe for concurrent use.
	writeMu sync.Mutex

	mu                          sync.Mutex
	answered, failed, abandoned int64
}

func newRunner(spec *runspec.Spec, files Files, deps Deps, log zerolog.Logger) (*runner, error) {
	sch, err := schema.Parse(spec.Schema, spec.SchemaSource)
	if err != nil {
		return nil, err
	}
	r := &runner{spec: spec, files: files, schema: sch, log: log, prices: deps.Prices, priority: map[string]bool{}}
	if r.prices == nil {
		r.prices = price.Default()
	}
	r.prices = r.prices.With(spec.Prices)
	for _, id := range spec.PriorityIDs {
		r.priority[id] = true
	}
	provider, err := newProvider(spec, sch, deps)
	if err != nil {
		return nil, err
	}
	if spec.Provider != runspec.ProviderOffline {
		if r.tmpl, err = prompt.Parse(spec.PromptSource, spec.Prompt); err != nil {
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
			answer = estimate.AnswerTokens(sch)
			r.schemaTokens = r.counter.Count(string(strict))
		}
		r.outTokens = estimate.ExpectedOutput(answer, spec.Model, spec.ReasoningEffort, spec.MaxCompletionTokens).PerRequest
	}
	r.caller = &llm.Caller{
		Provider:    provider,
		Validate:    sch.Validate,
		MaxAttempts: spec.MaxAttempts,
		Backoff:     llm.Backoff{Base: 500 * time.Millisecond, Max: 30 * time.Second, MaxRetryAfter: 60 * time.Second},
		Timeout:     time.Duration(spec.Timeout),
		OnAttempt:   r.onAttempt,
		BeforeAttempt: func(ctx context.Context, id string, attempt int) error {
			return r.attempts.Record(id)
		},
		EscalateModel: spec.EscalateModel,
	}

	if r.results, err = results.OpenWriter(files.Results, ResultsHeader(spec.IDColumn, sch)); err != nil {
		return nil, err
	}
	if r.failures, err = results.OpenWriter(files.Failures, results.FailureHeader(spec.IDColumn)); err != nil {
		r.close()
		return nil, err
	}
	if r.attempts, r.prior, err = openAttemptLog(files.Attempts); err != nil {
		r.close()
		return nil, err
	}
	r.skip = map[string]bool{}
	for _, p := range []string{files.Results, files.Failures} {
		if _, _, err := results.Read(p, func(row []string) error {
			r.skip[row[0]] = true
			return nil
		}); err != nil {
			r.close()
			return nil, err
		}
	}
	return r, nil
}

func newProvider(spec *runspec.Spec, sch *schema.Schema, deps Deps) (llm.Provider, error) {
	switch spec.Provider {
	case runspec.ProviderOffline:
		return offline.Provider{}, nil
	case runspec.ProviderOpenAI:
		getenv := deps.Getenv
		if getenv == nil {
			getenv = os.Getenv
		}
		key := getenv("OPENAI_API_KEY")
		if key == "" {
			return nil, fmt.Errorf("OPENAI_API_KEY is not set: this run uses provider openai; export the key in the environment (never as a flag): %w", exitcode.ErrUsage)
		}
		return llm.NewOpenAI(llm.OpenAIConfig{
			BaseURL:             spec.BaseURL,
			APIKey:              key,
			SchemaName:          sch.Name,
			Schema:              sch.StrictJSON(),
			ReasoningEffort:     spec.ReasoningEffort,
			Temperature:         spec.Temperature,
			MaxCompletionTokens: spec.MaxCompletionTokens,
			Timeout:             time.Duration(spec.Timeout),
			HTTPClient:          deps.HTTPClient,
		}), nil
	default:
		return nil, fmt.Errorf("run.json names provider %q; want openai or offline: %w", spec.Provider, exitcode.ErrUsage)
	}
}

func (r *runner) close() {
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

func (r *runner) run(ctx context.Context, cancel context.CancelCauseFunc) error {
	start := time.Now()
	// What is left, so progress has a total: the batch's size comes from run.json's plan when
	// the batch is one of the run's (a file named by hand is counted with one extra pass).
	done := int64(len(r.skip))
	size, err := r.batchSize()
	if err != nil {
		return err
	}
	pending := max(0, size-done)
	r.log.Info().Int64("pending", pending).Int64("done", done).Str("model", r.spec.Model).
		Str("provider", r.spec.Provider).Int("concurrency", r.spec.Concurrency).Msg("batch started")
	r.events.Emit(event.Event{Type: event.Start, Worker: r.files.Number, Pending: pending, Done: done})

	work := make(chan record.Record)
	var wg sync.WaitGroup
	var fatalOnce sync.Once
	var fatal error
	for i := 0; i < r.spec.Concurrency; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for rec := range work {
				if err := r.process(ctx, rec); err != nil {
					fatalOnce.Do(func() { fatal = err })
					cancel(err)
				}
			}
		}()
	}
	readErr := batch.Read(r.files.Batch, r.spec.IDField, func(rec record.Record) error {
		if r.skip[rec.ID] {
			return nil
		}
		select {
		case work <- rec:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	})
	close(work)
	wg.Wait()

	r.mu.Lock()
	answered, failed, abandoned := r.answered, r.failed, r.abandoned
	r.mu.Unlock()
	elapsed := time.Since(start)
	r.log.Info().Int64("answered", answered).Int64("failed", failed).Int64("abandoned", abandoned).
		Float64("seconds", math.Round(elapsed.Seconds()*1000)/1000).Msg("batch finished")
	r.events.Emit(event.Event{Type: event.End, Worker: r.files.Number, Done: answered, MaxRSSKB: proc.PeakRSSKB()})

	switch {
	case fatal != nil:
		return fatal
	case ctx.Err() != nil:
		cause := context.Cause(ctx)
		r.log.Warn().Str("cause", cause.Error()).Int64("abandoned", abandoned).Msg("stopped before the batch was done; run again to resume")
		return fmt.Errorf("worker %d: %w: %w", r.files.Number, cause, exitcode.ErrInterrupted)
	case readErr != nil:
		return readErr
	case failed > 0:
		return fmt.Errorf("worker %d: %d of %d records failed (see %s): %w", r.files.Number, failed, pending, filepath.Base(r.files.Failures), exitcode.ErrRecordsFailed)
	}
	return nil
}

// batchSize is the number of records in this worker's batch.
func (r *runner) batchSize() (int64, error) {
	for _, b := range r.spec.Batches {
		if b.Number == r.files.Number && r.files.Batch == filepath.Join(r.files.Dir, batch.FileName(b.Number)) {
			return b.Count, nil
		}
	}
	var n int64
	err := batch.Read(r.files.Batch, r.spec.IDField, func(record.Record) error {
		n++
		return nil
	})
	return n, err
}

// process handles one record. It returns an error only when the whole run must stop.
func (r *runner) process(ctx context.Context, rec record.Record) error {
	req := llm.Request{RecordID: rec.ID, Record: rec.Data, Model: r.spec.Model}
	if r.priority[rec.ID] && r.spec.PriorityModel != "" {
		req.Model = r.spec.PriorityModel
	}
	if r.tmpl != nil {
		msgs, err := r.tmpl.Render(rec)
		if err != nil {
			r.fail(rec.ID, "prompt_error", err.Error(), llm.Result{Attempts: r.prior[rec.ID]})
			return nil
		}
		req.System, req.User = msgs.System, msgs.User
		if msg := r.tooLong(req); msg != "" {
			r.fail(rec.ID, string(llm.ClassTooLong), msg, llm.Result{Attempts: r.prior[rec.ID]})
			return nil
		}
	}
	caller := *r.caller // a Caller holds no state: a copy per record carries its estimate
	if r.tmpl != nil {
		// Without --tpm the estimate only feeds the server's token headers back: a rough one will do.
		est := (len(req.System)+len(req.User))/4 + r.outTokens + r.schemaTokens
		if r.spec.TPM > 0 {
			est = r.counter.Estimate(req.System, req.User, r.outTokens) + r.schemaTokens
		}
		caller.BeforeAttempt = func(ctx context.Context, id string, attempt int) error {
			if err := r.permits.Wait(ctx, est); err != nil {
				return err
			}
			return r.attempts.Record(id) // after the permit: an attempt waited out was not made
		}
		caller.OnAttempt = func(a llm.Attempt) {
			r.onAttempt(a)
			r.rateFeedback(est, a)
		}
	}
	res, err := caller.Call(ctx, req, r.prior[rec.ID])
	if err == nil {
		return r.succeed(rec.ID, res)
	}
	var le *llm.Error
	switch {
	case ctx.Err() != nil, errors.Is(err, ratelimit.ErrCoordinatorGone):
		// Interrupted: the record is neither answered nor failed, and a rerun resumes it.
		r.mu.Lock()
		r.abandoned++
		r.mu.Unlock()
		return nil
	case errors.As(err, &le) && le.Fatal():
		r.log.Error().Str("id", rec.ID).Str("class", string(le.Class)).Int("status", le.Status).Str("error", le.Message).
			Msg("the API refused the run; stopping")
		r.events.Emit(event.Event{Type: event.Fatal, Worker: r.files.Number, ID: rec.ID, Class: string(le.Class), Status: le.Status, Message: le.Message})
		return fmt.Errorf("%s (HTTP %d): %s: %w", le.Class, le.Status, le.Message, exitcode.ErrFatalAPI)
	case errors.As(err, &le):
		r.fail(rec.ID, string(le.Class), le.Message, res)
	default:
		r.fail(rec.ID, "internal", err.Error(), res)
	}
	return nil
}

func (r *runner) succeed(id string, res llm.Result) error {
	cost, known := r.cost(res)
	costCell := ""
	if known {
		costCell = strconv.FormatFloat(cost, 'f', 6, 64)
	}
	// Worker files hold raw values; the merge applies the spreadsheet-formula guard once.
	row := append([]string{id}, r.schema.Cells(res.Values)...)
	row = append(row, res.Model,
		strconv.FormatInt(res.Usage.InputTokens, 10),
		strconv.FormatInt(res.Usage.OutputTokens, 10),
		costCell,
		strconv.Itoa(res.Attempts),
		strconv.FormatInt(res.Latency.Milliseconds(), 10),
		strconv.Itoa(r.files.Number))
	r.writeMu.Lock()
	err := r.results.Append(row)
	r.writeMu.Unlock()
	if err != nil {
		return fmt.Errorf("record %s: %w", id, err)
	}
	r.mu.Lock()
	r.answered++
	r.mu.Unlock()
	r.events.Emit(event.Event{Type: event.Record, Worker: r.files.Number, ID: id, OK: true, Attempts: res.Attempts,
		Model: res.Model, InputTokens: res.Usage.InputTokens, CachedTokens: res.Usage.CachedInputTokens,
		OutputTokens: res.Usage.OutputTokens, CostUSD: cost, CostUnknown: !known, LatencyMS: res.Latency.Milliseconds()})
	return nil
}

// rateFeedback tells the rate limiter what the server said and what a request really used.
func (r *runner) rateFeedback(est int, a llm.Attempt) {
	fb := ratelimit.ParseHeader(a.RateLimit)
	fb.Status = 200
	if a.Err != nil {
		fb.Status = a.Err.Status
		if a.Err.Class == llm.ClassRateLimited {
			fb.Status, fb.RetryAfter = 429, a.Err.RetryAfter
		}
	}
	r.permits.Feedback(fb)
	switch used := int(a.Usage.InputTokens + a.Usage.OutputTokens); {
	case used > 0:
		r.permits.Reconcile(est, used)
	case a.Err != nil && a.Err.Status >= 400 && a.Err.Status < 500:
		r.permits.Reconcile(est, 0) // refused before any work
	}
}

// lockedWriter writes whole lines from many goroutines to one stream.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// tooLong says why a prompt must not be sent, or "" when it fits. The limit is
// --max-input-tokens, or else the model's known input window; a record over it fails with class
// too_long before any request, rather than failing at the API or being cut silently.
func (r *runner) tooLong(req llm.Request) string {
	limit := r.spec.MaxInputTokens
	source := "--max-input-tokens"
	if limit <= 0 {
		limit, source = tokens.ContextWindow(req.Model), "the input window of "+req.Model
	}
	if limit <= 0 {
		return ""
	}
	if len(req.System)+len(req.User)+2*tokens.PerMessage+tokens.ReplyPriming <= limit {
		return "" // a token is at least one byte: this prompt cannot be over
	}
	n := r.counter.Estimate(req.System, req.User, 0)
	if n <= limit {
		return ""
	}
	return fmt.Sprintf("the prompt is about %d tokens, over %s (%d); shorten the record or the template (e.g. {{truncate N ...}}), or raise --max-input-tokens", n, source, limit)
}

// cost prices every attempt at the rate of the model it went to.
func (r *runner) cost(res llm.Result) (usd float64, known bool) {
	known = true
	for model, u := range res.ByModel {
		c, ok := r.prices.Cost(model, u.InputTokens, u.CachedInputTokens, u.OutputTokens)
		usd += c
		known = known && ok
	}
	return usd, known
}

func (r *runner) fail(id, class, msg string, res llm.Result) {
	attempts := res.Attempts
	cost, known := r.cost(res)
	row := []string{id, class, msg, strconv.Itoa(attempts), strconv.Itoa(r.files.Number)}
	r.writeMu.Lock()
	err := r.failures.Append(row)
	r.writeMu.Unlock()
	if err != nil {
		r.log.Error().Err(err).Str("id", id).Msg("cannot record failure")
	}
	r.log.Warn().Str("id", id).Str("class", class).Int("attempts", attempts).Str("error", msg).Msg("record failed")
	r.mu.Lock()
	r.failed++
	r.mu.Unlock()
	r.events.Emit(event.Event{Type: event.Record, Worker: r.files.Number, ID: id, Class: class, Message: msg, Attempts: attempts,
		InputTokens: res.Usage.InputTokens, CachedTokens: res.Usage.CachedInputTokens, OutputTokens: res.Usage.OutputTokens,
		CostUSD: cost, CostUnknown: !known})
}

func (r *runner) onAttempt(a llm.Attempt) {
	// Per-request lines go to the log file only; the coordinator counts retries from events.
	ev := r.log.Debug().Str("id", a.RecordID).Int("attempt", a.Attempt).Int64("latency_ms", a.Latency.Milliseconds()).
		Int64("input_tokens", a.Usage.InputTokens).Int64("output_tokens", a.Usage.OutputTokens).Str("model", a.Model)
	if a.Err == nil {
		ev.Str("status", "ok").Msg("request")
		return
	}
	ev.Str("status", "error").Str("class", string(a.Err.Class)).Int("http_status", a.Err.Status).
		Str("error", a.Err.Message).Int64("retry_in_ms", a.Delay.Milliseconds()).Msg("request")
	r.events.Emit(event.Event{Type: event.Retry, Worker: r.files.Number, ID: a.RecordID, Attempt: a.Attempt,
		Class: string(a.Err.Class), Status: a.Err.Status, DelayMS: a.Delay.Milliseconds()})
}
