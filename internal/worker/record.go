package worker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/trialcat/trialcat/internal/batch"
	"github.com/trialcat/trialcat/internal/cache"
	"github.com/trialcat/trialcat/internal/exitcode"
	"github.com/trialcat/trialcat/internal/llm"
	"github.com/trialcat/trialcat/internal/modelinfo"
	"github.com/trialcat/trialcat/internal/proc"
	"github.com/trialcat/trialcat/internal/ratelimit"
	"github.com/trialcat/trialcat/internal/record"
	"github.com/trialcat/trialcat/internal/results"
	"github.com/trialcat/trialcat/internal/tokens"
	"github.com/trialcat/trialcat/internal/wire"
)

func (r *runner) run(ctx context.Context, cancel context.CancelCauseFunc) error {
	start := time.Now()
	r.cancel = cancel
	defer r.reach.stop()
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
	r.emit(wire.Msg{Type: wire.Start, Pending: pending, Done: done})

	if r.hedge != nil {
		hctx, stop := context.WithCancel(ctx)
		defer stop()
		go r.hedge.run(hctx, 50*time.Millisecond)
	}
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
	// Records that were in flight when an earlier process of this batch died (attempts spent,
	// no outcome) may be what killed it: they go last and one at a time, so that they cannot
	// take the batch's other records down with them again.
	var suspects []record.Record
	readErr := batch.Read(r.files.Batch, r.spec.IDField, func(rec record.Record) error {
		if r.skip[rec.ID] {
			return nil
		}
		if r.prior[rec.ID] > 0 {
			suspects = append(suspects, rec)
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
	for _, rec := range suspects {
		if ctx.Err() != nil || fatal != nil {
			break
		}
		if err := r.process(ctx, rec); err != nil {
			fatal = err
			cancel(err)
		}
	}

	r.mu.Lock()
	answered, failed, abandoned := r.answered, r.failed, r.abandoned
	r.mu.Unlock()
	elapsed := time.Since(start)
	r.log.Info().Int64("answered", answered).Int64("failed", failed).Int64("abandoned", abandoned).
		Float64("seconds", math.Round(elapsed.Seconds()*1000)/1000).Msg("batch finished")
	r.emit(wire.Msg{Type: wire.End, Done: answered, MaxRSSKB: proc.PeakRSSKB()})

	switch {
	case fatal != nil:
		return fatal
	case errors.Is(context.Cause(ctx), exitcode.ErrFatalAPI):
		return context.Cause(ctx) // the server could not be reached at all
	case ctx.Err() != nil:
		cause := context.Cause(ctx)
		r.log.Warn().Str("cause", cause.Error()).Int64("abandoned", abandoned).Msg("stopped before the batch was done; run again to resume")
		return fmt.Errorf("worker %d: %w: %w", r.files.Number, cause, exitcode.ErrInterrupted)
	case readErr != nil:
		return readErr
	case failed > 0:
		return exitcode.Incomplete(fmt.Sprintf("worker %d: %d of %d records failed (see %s)", r.files.Number, failed, pending, filepath.Base(r.files.Failures)))
	}
	return nil
}

// batchSize is the number of records in this worker's batch.
func (r *runner) batchSize() (int64, error) {
	for _, b := range r.spec.Batches {
		if b.Number == r.files.Number && r.files.Batch == r.files.Dir.Batch(b.Number) {
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
	if n := r.prior[rec.ID]; n >= r.spec.MaxAttempts {
		// Every attempt was spent and none ended: each time, the worker process died with this
		// record in flight (killed, out of memory, a crash in a library). It is not sent again.
		return r.fail(rec.ID, string(llm.ClassWorkerCrashed), fmt.Sprintf("the worker process ended %d times with this record in flight "+
			"(killed, out of memory, or a crash); it is not sent again in this run, and a rerun tries it afresh", n), llm.Result{Attempts: n})
	}
	if c, ok := r.carried[rec.ID]; ok && c.SHA256 == record.ContentHash(rec.Data) {
		// Unchanged since the earlier run (--since-run): its answer, no request.
		return r.record(rec.ID, llm.Result{Model: c.Model, Attempts: r.prior[rec.ID]}, answerInfo{carried: true, cells: c.Values})
	}
	if r.agent != nil {
		return r.processAgent(ctx, rec)
	}
	if len(r.spec.Cascade) > 0 {
		return r.cascade(ctx, rec)
	}
	if r.spec.Votes > 1 {
		return r.askVotes(ctx, rec)
	}
	return r.askOnce(ctx, rec, answerInfo{}, llm.Result{})
}

// callerFor is the Caller of one request: a copy of the worker's (a Caller holds no state) that
// waits for a rate permit sized to req and journals each attempt.
func (r *runner) callerFor(req llm.Request) llm.Caller {
	caller := *r.caller
	if r.tmpl != nil {
		// Without --tpm the estimate only feeds the server's token headers back: a rough one will do.
		est := (len(req.System)+len(req.User))/4 + r.outTokens + r.schemaTokens
		if r.spec.TPM > 0 {
			est = r.counter.Estimate(req.System, req.User, r.outTokens) + r.schemaTokens
		}
		caller.BeforeAttempt = func(ctx context.Context, id string, attempt int) error {
			if err := r.waitPermit(ctx, est); err != nil {
				return err
			}
			if err := r.attempts.Record(id); err != nil { // after the permit: an attempt waited out was not made
				return r.writeFailed(r.files.Attempts, err)
			}
			r.started.Add(1)
			return nil
		}
		caller.OnAttempt = func(a llm.Attempt) {
			r.onAttempt(a)
			r.rateFeedback(est, a)
		}
	}
	return caller
}

// askOnce asks rec's one-shot prompt (with its retries) and records the outcome. info says how
// the answer came and spent what was spent on the record before (an agent's loop fallen back):
// its tokens, cost and attempts are the record's too.
func (r *runner) askOnce(ctx context.Context, rec record.Record, info answerInfo, spent llm.Result) error {
	req, fail := r.request(rec)
	if fail != nil {
		return fail()
	}
	key := r.cacheKey(req)
	if res, ok := r.fromCache(key, rec.ID); ok {
		if spent.Attempts == 0 {
			return r.succeedAs(rec.ID, res, true)
		}
		return r.record(rec.ID, spent.Plus(res), info) // the loop was paid for; the one-shot answer was not
	}
	caller := r.callerFor(req)
	var note *hedgeNote
	callCtx := ctx
	if r.hedge != nil {
		callCtx, note = withHedgeNote(ctx)
	}
	res, err := caller.Call(callCtx, req, r.prior[rec.ID])
	if err == nil {
		r.store(key, res)
		if spent.Attempts > 0 {
			return r.record(rec.ID, spent.Plus(res), info)
		}
		return r.succeedHedged(rec.ID, res, note)
	}
	return r.settle(ctx, rec.ID, err, spent.Plus(res))
}

// waitPermit waits for a rate permit for a request of about est tokens, counted as waiting for
// the heartbeat meanwhile.
func (r *runner) waitPermit(ctx context.Context, est int) error {
	r.waiting.Add(1)
	defer r.waiting.Add(-1)
	return r.permits.Wait(ctx, est)
}

// settle records a record whose request failed: abandoned (interrupted, or the server could not
// be reached for long: a rerun resumes it), the run refused (the worker stops), a journal that
// cannot be written, or failed for good. It returns an error only when the worker must stop.
func (r *runner) settle(ctx context.Context, id string, err error, res llm.Result) error {
	var le *llm.Error
	switch {
	case ctx.Err() != nil, errors.Is(err, ratelimit.ErrCoordinatorGone), errors.As(err, &le) && le.Free():
		// Interrupted, or the server could not be reached (or kept answering 429) for a long
		// time: the record is neither answered nor failed, and a rerun resumes it.
		r.mu.Lock()
		r.abandoned++
		r.mu.Unlock()
		return nil
	case errors.As(err, &le) && le.Fatal():
		r.log.Error().Str("id", id).Str("class", string(le.Class)).Int("status", le.Status).Str("error", le.Message).
			Msg("the API refused the run; stopping")
		r.emit(wire.Msg{Type: wire.Fatal, ID: id, Class: string(le.Class), Status: le.Status, Message: le.Refusal()})
		return exitcode.Refused(le.Refusal())
	case errors.Is(err, exitcode.ErrStorage):
		return err // the attempts journal could not be written
	case errors.As(err, &le):
		return r.fail(id, string(le.Class), le.Message, res)
	default:
		return r.fail(id, "internal", err.Error(), res)
	}
}

// modelFor is the model that asks record id: the priority model for the priority IDs.
func (r *runner) modelFor(id string) string {
	if r.priority[id] && r.spec.PriorityModel != "" {
		return r.spec.PriorityModel
	}
	return r.spec.Model
}

// request is the question about rec: its model (the priority model for priority IDs) and its
// rendered prompt. A record that cannot be asked (a template error, a prompt over the input
// window) comes back as fail, which records it as failed.
func (r *runner) request(rec record.Record) (req llm.Request, fail func() error) {
	req = llm.Request{RecordID: rec.ID, Record: rec.Data, Model: r.modelFor(rec.ID), ServiceTier: r.spec.ServiceTier}
	if r.tmpl == nil {
		return req, nil
	}
	msgs, err := r.tmpl.Render(rec)
	if err != nil {
		return req, func() error {
			return r.fail(rec.ID, "prompt_error", err.Error(), llm.Result{Attempts: r.prior[rec.ID]})
		}
	}
	req.System, req.User = msgs.System, msgs.User
	if msg := r.tooLong(req); msg != "" {
		return req, func() error {
			return r.fail(rec.ID, string(llm.ClassTooLong), msg, llm.Result{Attempts: r.prior[rec.ID]})
		}
	}
	return req, nil
}

// store keeps an answer in the response cache under key ("" or no cache: nothing). A cache that
// cannot be written is said once.
func (r *runner) store(key string, res llm.Result) {
	if key == "" || r.cache == nil {
		return
	}
	u := res.Usage
	if err := r.cache.Put(key, cache.Entry{Model: res.Model, Content: res.Content, InputTokens: u.InputTokens,
		CachedInputTokens: u.CachedInputTokens, OutputTokens: u.OutputTokens, CreatedAt: time.Now().UTC()}); err != nil {
		r.cacheWarn.Do(func() {
			r.log.Warn().Err(err).Str("dir", r.cache.Dir()).Msg("cannot store answers in the response cache; the run goes on without storing them")
		})
	}
}

// cacheKey is the response cache's key of req, or "" when there is no cache.
func (r *runner) cacheKey(req llm.Request) string {
	if r.cache == nil || r.openai == nil {
		return ""
	}
	body, err := r.openai.Body(req)
	if err != nil {
		return ""
	}
	return cache.Key(r.cacheHost, body)
}

func (r *runner) succeed(id string, res llm.Result) error { return r.succeedAs(id, res, false) }

// succeedHedged records an answered record whose request the hedger may have copied.
func (r *runner) succeedHedged(id string, res llm.Result, note *hedgeNote) error {
	if note == nil {
		return r.succeed(id, res)
	}
	hedged, won := note.get()
	return r.record(id, res, answerInfo{hedged: hedged, hedgeWon: won})
}

// succeedAs records an answered record; cached marks an answer from the response cache (no
// request was made: no tokens, no cost).
func (r *runner) succeedAs(id string, res llm.Result, cached bool) error {
	return r.record(id, res, answerInfo{cached: cached})
}

// answerInfo is how an answer came: from the response cache, with a hedged copy, through an
// agent's loop.
type answerInfo struct {
	cached, hedged, hedgeWon bool
	// turns and toolCalls describe an agent's loop; fallback says a limit sent the record to
	// the one-shot prompt.
	turns     int
	toolCalls map[string]int
	fallback  bool
	// carried is an earlier run's answer for a record unchanged since (--since-run), whose
	// cells are the earlier run's.
	carried bool
	cells   []string
	// decidedBy and escalated are a --cascade record's: the model kept, and why earlier ones
	// were not.
	decidedBy, escalated string
}

// source is the results' source cell of an answer that came so.
func (i answerInfo) source() string {
	switch {
	case i.carried:
		return results.SourceCarried
	case i.cached:
		return results.SourceCache
	}
	return results.SourceModel
}

func (r *runner) record(id string, res llm.Result, info answerInfo) error {
	cost, known := r.cost(res)
	if info.cached || info.carried {
		cost, known = 0, true
	}
	// Worker files hold raw values; the merge applies the spreadsheet-formula guard once.
	values := info.cells
	if values == nil {
		values = r.schema.Cells(res.Values)
	}
	row, err := r.layout.Encode(results.Row{ID: id, Values: values, Model: res.Model,
		InputTokens: res.Usage.InputTokens, OutputTokens: res.Usage.OutputTokens, CostUSD: cost, CostKnown: known,
		Attempts: res.Attempts, LatencyMS: res.Latency.Milliseconds(), Worker: r.files.Number, Cached: info.cached,
		CachedTokens: res.Usage.CachedInputTokens, Turns: info.turns, ToolCalls: results.FormatToolCalls(info.toolCalls, info.fallback),
		Source: info.source(), DecidedBy: info.decidedBy, Escalated: info.escalated, ServiceTier: tierOf(res, info)})
	if err != nil {
		return fmt.Errorf("record %s: %w", id, err)
	}
	r.writeMu.Lock()
	err = r.results.Append(row)
	r.writeMu.Unlock()
	if err != nil {
		return r.writeFailed(r.files.Results, err)
	}
	r.mu.Lock()
	r.answered++
	r.mu.Unlock()
	r.emit(wire.Msg{Type: wire.Record, ID: id, OK: true, Attempts: res.Attempts,
		Model: res.Model, InputTokens: res.Usage.InputTokens, CachedTokens: res.Usage.CachedInputTokens,
		OutputTokens: res.Usage.OutputTokens, CostUSD: cost, CostUnknown: !known, LatencyMS: res.Latency.Milliseconds(), Cells: row, Cached: info.cached, Carried: info.carried,
		Hedged: info.hedged, HedgeWon: info.hedgeWon, Turns: info.turns, ToolCalls: info.toolCalls, Fallback: info.fallback,
		FlexRefusals: res.FlexRefusals, FlexFellBack: res.FellBack})
	return nil
}

// tierOf is the service_tier cell of an answer: the tier it was served on, none for an answer
// that made no request now (the response cache's, an earlier run's).
func tierOf(res llm.Result, info answerInfo) string {
	if info.cached || info.carried {
		return ""
	}
	return res.Tier
}

// rateFeedback tells the rate limiter what the server said and what a request really used.
func (r *runner) rateFeedback(est int, a llm.Attempt) {
	fb := ratelimit.ParseHeader(a.RateLimit)
	fb.Status = 200
	if a.Err != nil {
		fb.Status = a.Err.Status
		switch a.Err.Class {
		case llm.ClassRateLimited:
			fb.Status, fb.RetryAfter = 429, a.Err.RetryAfter
		case llm.ClassFlexUnavailable:
			// The flex tier's capacity, not the key's limits: the record backs off alone.
			fb.Status = 200
		case llm.ClassUnreachable:
			fb.Outage, fb.RetryAfter = true, a.Delay // every worker waits, then one probes
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

// emit sends an event to the coordinator, if one listens. Errors are ignored: a coordinator
// that has gone away is noticed through stdin, and events are never the record of truth.
func (r *runner) emit(m wire.Msg) {
	m.Worker = r.files.Number
	switch m.Type {
	case wire.Fatal, wire.Start, wire.End:
		_ = r.events.Send(m) // at once: the coordinator acts on them
		return
	}
	_ = r.events.Post(m) // shares a write with the lines that follow within wire.PostDelay
}

// tooLong says why a prompt must not be sent, or "" when it fits. The limit is
// --max-input-tokens, or else the model's known input window; a record over it fails with class
// too_long before any request, rather than failing at the API or being cut silently.
func (r *runner) tooLong(req llm.Request) string {
	limit := r.spec.MaxInputTokens
	source := "--max-input-tokens"
	if limit <= 0 {
		limit, source = modelinfo.ContextWindow(req.Model), "the input window of "+req.Model
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

// cost prices every attempt at the rate of the model it went to and the tier it was served on
// (the Batch API's answers are of TierBatch).
func (r *runner) cost(res llm.Result) (usd float64, known bool) {
	known = true
	for ch, u := range res.Billed {
		c, ok := r.prices.CostAt(ch.Model, ch.Tier, u.InputTokens, u.CachedInputTokens, u.OutputTokens)
		usd += c
		known = known && ok
	}
	return usd, known
}

// fail records a record that failed for good. It returns an error only when that record could
// not be written (the run must stop).
func (r *runner) fail(id, class, msg string, res llm.Result) error {
	attempts := res.Attempts
	cost, known := r.cost(res)
	row := results.EncodeFailure(results.Failure{ID: id, Class: class, Message: msg, Attempts: attempts, Worker: r.files.Number})
	r.writeMu.Lock()
	err := r.failures.Append(row)
	r.writeMu.Unlock()
	if err != nil {
		return r.writeFailed(r.files.Failures, err)
	}
	r.log.Warn().Str("id", id).Str("class", class).Int("attempts", attempts).Str("error", msg).Msg("record failed")
	r.mu.Lock()
	r.failed++
	r.mu.Unlock()
	r.emit(wire.Msg{Type: wire.Record, ID: id, Class: class, Message: msg, Attempts: attempts,
		InputTokens: res.Usage.InputTokens, CachedTokens: res.Usage.CachedInputTokens, OutputTokens: res.Usage.OutputTokens,
		CostUSD: cost, CostUnknown: !known, FlexRefusals: res.FlexRefusals, FlexFellBack: res.FellBack})
	return nil
}

// writeFailed reports that one of the batch's files could not be written, to the log and to the
// coordinator, and returns the error that stops the worker (exit code 4).
func (r *runner) writeFailed(path string, err error) error {
	msg := fmt.Sprintf("cannot write %s: %v", filepath.Base(path), err)
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		msg = fmt.Sprintf("no space left on device writing %s; free space in %s and rerun the same command", filepath.Base(path), r.files.Dir.Path())
	}
	r.log.Error().Err(err).Msg(msg)
	r.emit(wire.Msg{Type: wire.Fatal, Class: wire.ClassStorage, Message: msg})
	return exitcode.StorageFailed(msg)
}

func (r *runner) onAttempt(a llm.Attempt) {
	r.reach.note(r, a)
	if a.Err != nil && a.Err.Free() {
		// The request reached no server, or was rate limited: no attempt of the record's.
		if err := r.attempts.Refund(a.RecordID); err != nil {
			r.log.Error().Err(err).Str("id", a.RecordID).Msg("cannot give back an attempt that was not the record's fault")
		}
	}
	if a.Warning != "" {
		r.log.Warn().Str("id", a.RecordID).Int("attempt", a.Attempt).Msg(a.Warning)
	}
	if a.Err != nil && a.Err.Class == llm.ClassCanceled {
		// Abandoned because the run is stopping, not the record's fault: give the attempt back.
		if err := r.attempts.Refund(a.RecordID); err != nil {
			r.log.Error().Err(err).Str("id", a.RecordID).Msg("cannot give back an abandoned attempt")
		}
		return
	}
	r.logAttempt(a, 0)
}

// logAttempt writes an attempt's line to the log file (turn: an agent loop's, 0 for one-shot)
// and tells the coordinator of a failed one, which it counts as a retry.
func (r *runner) logAttempt(a llm.Attempt, turn int) {
	// Per-request lines go to the log file only; the coordinator counts retries from events.
	ev := r.log.Debug().Str("id", a.RecordID).Int("attempt", a.Attempt).Int64("latency_ms", a.Latency.Milliseconds()).
		Int64("input_tokens", a.Usage.InputTokens).Int64("output_tokens", a.Usage.OutputTokens).Str("model", a.Model)
	if turn > 0 {
		ev = ev.Int("turn", turn)
	}
	if a.Err == nil {
		ev.Str("status", "ok").Msg("request")
		return
	}
	ev.Str("status", "error").Str("class", string(a.Err.Class)).Int("http_status", a.Err.Status).
		Str("error", a.Err.Message).Int64("retry_in_ms", a.Delay.Milliseconds()).Msg("request")
	r.emit(wire.Msg{Type: wire.Retry, ID: a.RecordID, Attempt: a.Attempt,
		Class: string(a.Err.Class), Status: a.Err.Status, DelayMS: a.Delay.Milliseconds()})
}

// fromCache is the response cache's answer to the request under key ("" when the run has no
// cache), if it has a usable one: an answer that no longer passes the schema is asked again, and
// an entry that cannot be used (damaged, empty, another request's) is logged and asked again.
func (r *runner) fromCache(key, id string) (llm.Result, bool) {
	if key == "" {
		return llm.Result{}, false
	}
	e, err := r.cache.Lookup(key)
	if err != nil {
		if !errors.Is(err, cache.ErrMiss) {
			r.log.Warn().Str("id", id).Err(err).Msg("cannot use the cached answer")
		}
		return llm.Result{}, false
	}
	vals, err := r.caller.Check([]byte(e.Content))
	if err != nil {
		r.log.Info().Str("id", id).Err(err).Msg("the cached answer does not pass the run's schema: asking again")
		return llm.Result{}, false
	}
	return llm.Result{Values: vals, Content: e.Content, Model: e.Model, Attempts: r.prior[id]}, true
}
