package worker

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/trialcat/trialcat/internal/wait"

	"github.com/trialcat/trialcat/internal/batch"
	"github.com/trialcat/trialcat/internal/batchapi"
	"github.com/trialcat/trialcat/internal/cache"
	"github.com/trialcat/trialcat/internal/exitcode"
	"github.com/trialcat/trialcat/internal/llm"
	"github.com/trialcat/trialcat/internal/record"
	"github.com/trialcat/trialcat/internal/safefile"
	"github.com/trialcat/trialcat/internal/wire"
)

// The Batch API backend: worker N drives batch N through the OpenAI Batch API. It writes the
// requests of its records not done yet to input files (worker_N_part_K.jsonl, split below the
// API's limits), uploads each, creates a batch over it, polls until the batch ends, and writes
// the answers to the same results and failures files as a live run. Every file ID and batch ID
// is recorded in worker_N_batchapi.json the moment it exists, before the next step, so a crash
// at any point never submits a part twice: a rerun resumes each part where it stopped, and a
// batch whose creation was answered but not recorded is found by its input file.

// batchClient is what the backend needs of the Batch API (llm.BatchAPI; tests may replace it).
type batchClient interface {
	Upload(ctx context.Context, name string, data []byte) (string, error)
	Create(ctx context.Context, inputFileID string, metadata map[string]string) (llm.BatchInfo, error)
	Get(ctx context.Context, id string) (llm.BatchInfo, error)
	FindByInput(ctx context.Context, inputFileID string, pages int) (*llm.BatchInfo, error)
	Lines(ctx context.Context, fileID string, fn func([]byte) error) error
}

// batchRun is one worker process's pass of the Batch API backend.
type batchRun struct {
	r      *runner
	api    batchClient
	openai *llm.OpenAI
	st     *batchapi.State
	// expired holds records whose requests expired or were cancelled in this pass: they are
	// left to a rerun, not resubmitted now.
	expired map[string]bool
	// retry holds records whose answer failed in a way a new attempt may fix.
	retry map[string]bool
	// problems are what went wrong with whole parts (no output file, a failed batch): the
	// worker's exit says so.
	problems []string
}

// pollMin and pollMax bound the interval between status polls.
func (b *batchRun) pollBounds() (time.Duration, time.Duration) {
	p := time.Duration(b.r.spec.BatchAPI.Poll)
	if p <= 0 {
		p = 5 * time.Second
	}
	return p, 12 * p
}

func (b *batchRun) limits() (int, int64) {
	n, size := b.r.spec.BatchAPI.MaxRequests, b.r.spec.BatchAPI.MaxBytes
	if n <= 0 || n > llm.BatchMaxRequests {
		n = llm.BatchMaxRequests
	}
	if size <= 0 || size > llm.BatchMaxBytes {
		size = llm.BatchMaxBytes
	}
	return n, size
}

func (b *batchRun) save() error {
	if err := b.st.Save(b.r.files.BatchAPI); err != nil {
		return b.r.writeFailed(b.r.files.BatchAPI, err)
	}
	return nil
}

// runBatchAPI is the worker's run with the Batch API backend.
func (r *runner) runBatchAPI(ctx context.Context, api batchClient, openai *llm.OpenAI) error {
	start := time.Now()
	st, err := batchapi.Load(r.files.BatchAPI)
	if err != nil {
		return err
	}
	b := &batchRun{r: r, api: api, openai: openai, st: st, expired: map[string]bool{}, retry: map[string]bool{}}
	size, err := r.batchSize()
	if err != nil {
		return err
	}
	done := int64(len(r.skip))
	pending := max(0, size-done)
	r.log.Info().Int64("pending", pending).Int64("done", done).Str("model", r.spec.Model).Str("backend", "batch-api").Msg("batch started")
	r.emit(wire.Msg{Type: wire.Start, Pending: pending, Done: done})

	runErr := b.loop(ctx)

	r.mu.Lock()
	answered, failed := r.answered, r.failed
	r.mu.Unlock()
	r.log.Info().Int64("answered", answered).Int64("failed", failed).Int("left_for_a_rerun", len(b.expired)).
		Float64("seconds", time.Since(start).Seconds()).Msg("batch finished")
	r.emit(wire.Msg{Type: wire.End, Done: answered})
	switch {
	case runErr != nil:
		return runErr
	case len(b.problems) > 0 || len(b.expired) > 0:
		msg := fmt.Sprintf("worker %d: %d records were not answered by the Batch API", r.files.Number, len(b.expired))
		for _, p := range b.problems {
			msg += "; " + p
		}
		return exitcode.Incomplete(fmt.Sprintf("%s; rerun the same command to submit them again (or with --backend live to ask them now)", msg))
	case failed > 0:
		return exitcode.Incomplete(fmt.Sprintf("worker %d: %d records failed (see %s)", r.files.Number, failed, filepath.Base(r.files.Failures)))
	}
	return nil
}

// loop finishes the parts an earlier process left, then submits what is left to do, part by
// part, until every record is answered, failed for good, or left for a rerun.
func (b *batchRun) loop(ctx context.Context) error {
	for round := 0; ; round++ {
		if err := b.drive(ctx); err != nil {
			return err
		}
		made, err := b.prepare(ctx)
		if err != nil {
			return err
		}
		if made == 0 {
			return nil
		}
		if round > b.r.spec.MaxAttempts+1 {
			return fmt.Errorf("worker %d: the Batch API keeps returning answers that need another attempt after %d rounds", b.r.files.Number, round)
		}
	}
}

// prepare writes input files for the records not done, not failed, not in a part already, and
// not left for a rerun, and records them as parts; it returns how many parts it made.
func (b *batchRun) prepare(ctx context.Context) (int, error) {
	r := b.r
	inParts := map[string]bool{}
	for _, p := range b.st.Parts {
		if p.Collected {
			continue
		}
		ids, err := b.partIDs(p)
		if err != nil {
			return 0, err
		}
		for id := range ids {
			inParts[id] = true
		}
	}
	maxN, maxBytes := b.limits()
	// The lines stream from the batch file into one input file after another, each cut below
	// the limits: nothing holds a whole part in memory.
	var seqErr error
	next, stop := iter.Pull2(func(yield func(string, []byte) bool) {
		seqErr = b.eachRequest(ctx, func(id string) bool { return inParts[id] || b.expired[id] }, func(id string, line []byte) error {
			if !yield(id, line) {
				return errStopped
			}
			return nil
		})
	})
	defer stop()
	id, line, ok := next()
	made := 0
	for ok {
		if int64(len(line)) > maxBytes {
			r.skip[id] = true
			if err := r.fail(id, string(llm.ClassTooLong), fmt.Sprintf("its request is %d bytes, over the Batch API's %d per input file", len(line), maxBytes), llm.Result{Attempts: r.prior[id]}); err != nil {
				return made, err
			}
			id, line, ok = next()
			continue
		}
		k := len(b.st.Parts)
		path := r.files.Part(k)
		count, size := 0, int64(0)
		if err := safefile.Write(path, 0o644, func(w io.Writer) error {
			for ok && count < maxN && size+int64(len(line)) <= maxBytes {
				if _, err := w.Write(line); err != nil {
					return err
				}
				count++
				size += int64(len(line))
				id, line, ok = next()
			}
			return nil
		}); err != nil {
			return made, r.writeFailed(path, err)
		}
		b.st.Parts = append(b.st.Parts, batchapi.Part{Part: k, File: filepath.Base(path), Requests: count, Bytes: size,
			Status: "prepared", PreparedAt: time.Now().UTC(), UpdatedAt: time.Now().UTC()})
		if err := b.save(); err != nil {
			return made, err
		}
		made++
	}
	stop()
	switch {
	case seqErr == nil || errors.Is(seqErr, errStopped):
		return made, nil
	case ctx.Err() != nil:
		return made, b.interrupted(ctx)
	}
	return made, seqErr
}

// errStopped ends a request stream its reader no longer wants.
var errStopped = errors.New("stopped")

// eachRequest calls fn with the request line of every record of the batch not done, not
// failed and not excluded; records that cannot be asked (spent attempts, a template error, a
// prompt over the input window) are failed on the way.
func (b *batchRun) eachRequest(ctx context.Context, exclude func(id string) bool, fn func(id string, line []byte) error) error {
	r := b.r
	return batch.Read(r.files.Batch, r.spec.IDField, func(rec record.Record) error {
		if r.skip[rec.ID] || exclude(rec.ID) {
			return nil
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if n := r.prior[rec.ID]; n >= r.spec.MaxAttempts {
			r.skip[rec.ID] = true
			return r.fail(rec.ID, string(llm.ClassSchemaViolation), fmt.Sprintf("%d attempts through the Batch API gave no valid answer", n), llm.Result{Attempts: n})
		}
		req, fail := r.request(rec)
		if fail != nil {
			r.skip[rec.ID] = true
			return fail()
		}
		if res, ok := r.fromCache(r.cacheKey(req), rec.ID); ok {
			r.skip[rec.ID] = true
			return r.succeedAs(rec.ID, res, true)
		}
		line, err := b.openai.RequestLine(req)
		if err != nil {
			return err
		}
		return fn(rec.ID, line)
	})
}

// partIDs lists the custom_ids of a part's input file, each with the model asked.
func (b *batchRun) partIDs(p batchapi.Part) (map[string]string, error) {
	ids, _, err := b.partRequests(p, false)
	return ids, err
}

// partRequests reads a part's input file once: each custom_id's model and, with keys (and a
// response cache), its cache key from the request body (the bytes a live request would send).
func (b *batchRun) partRequests(p batchapi.Part, keys bool) (models, cacheKeys map[string]string, err error) {
	keys = keys && b.r.cache != nil
	models = map[string]string{}
	if keys {
		cacheKeys = map[string]string{}
	}
	f, err := os.Open(filepath.Join(b.r.files.Dir.Path(), p.File))
	if err != nil {
		return nil, nil, fmt.Errorf("part %d's input file: %w", p.Part, err)
	}
	defer f.Close()
	err = llm.EachLine(f, func(line []byte) error {
		var l struct {
			CustomID string          `json:"custom_id"`
			Body     json.RawMessage `json:"body"`
		}
		var body struct {
			Model string `json:"model"`
		}
		if err := json.Unmarshal(line, &l); err != nil {
			return fmt.Errorf("part %d's input file %s: %w", p.Part, p.File, err)
		}
		if err := json.Unmarshal(l.Body, &body); err != nil {
			return fmt.Errorf("part %d's input file %s: %w", p.Part, p.File, err)
		}
		models[l.CustomID] = body.Model
		if keys {
			cacheKeys[l.CustomID] = cache.Key(b.r.cacheHost, l.Body)
		}
		return nil
	})
	return models, cacheKeys, err
}

// drive takes every part not collected to its end: upload, create, poll, collect.
func (b *batchRun) drive(ctx context.Context) error {
	r := b.r
	for i := range b.st.Parts {
		p := &b.st.Parts[i]
		if p.Collected {
			continue
		}
		if err := b.submit(ctx, p); err != nil {
			return err
		}
	}
	minPoll, maxPoll := b.pollBounds()
	every := minPoll
	last := map[int]string{}
	for {
		open := 0
		queued := int64(0)
		for i := range b.st.Parts {
			p := &b.st.Parts[i]
			if p.Collected {
				continue
			}
			var info llm.BatchInfo
			if err := b.call(ctx, "retrieve batch "+p.BatchID, func() error {
				var err error
				info, err = b.api.Get(ctx, p.BatchID)
				return err
			}); err != nil {
				return err
			}
			p.Status, p.Completed, p.Failed = info.Status, info.Completed, info.Failed
			if say := fmt.Sprintf("%s %d/%d", info.Status, info.Completed+info.Failed, info.Total); say != last[p.Part] {
				last[p.Part] = say
				if err := b.save(); err != nil {
					return err
				}
				r.log.Info().Str("batch_id", p.BatchID).Int("part", p.Part).Str("status", info.Status).Int64("completed", info.Completed).
					Int64("failed", info.Failed).Int64("total", info.Total).Msg("Batch API batch")
			}
			if !info.Terminal() && !info.ExpiresAt.IsZero() && time.Now().After(info.ExpiresAt.Add(maxPoll)) {
				// A server whose batch runs on past its own window: what it answered by now is
				// collected, the rest is left for a rerun.
				r.log.Warn().Str("batch_id", p.BatchID).Time("expires_at", info.ExpiresAt).Str("status", info.Status).
					Msg("the batch is still running past its completion window; collecting it as expired")
				info.Status = "expired"
			}
			if !info.Terminal() {
				open++
				queued += int64(p.Requests)
				continue
			}
			if err := b.collect(ctx, p, info); err != nil {
				return err
			}
		}
		r.waiting.Store(queued)
		if open == 0 {
			return nil
		}
		if err := wait.Sleep(ctx, every); err != nil {
			return b.interrupted(ctx)
		}
		every = min(maxPoll, every*3/2)
	}
}

// interrupted is the error of a pass stopped while its batches run on at the API.
func (b *batchRun) interrupted(ctx context.Context) error {
	b.r.waiting.Store(0)
	var ids []string
	for _, p := range b.st.Parts {
		if !p.Collected && p.BatchID != "" {
			ids = append(ids, p.BatchID)
		}
	}
	b.r.log.Warn().Strs("batches", ids).Msg("stopped while batches run at the Batch API; they go on: rerun the same command to collect them")
	return fmt.Errorf("worker %d: %w: %w", b.r.files.Number, context.Cause(ctx), exitcode.ErrInterrupted)
}

// submit uploads a part's input file and creates its batch, recording each ID as it comes.
func (b *batchRun) submit(ctx context.Context, p *batchapi.Part) error {
	r := b.r
	if p.BatchID != "" {
		return nil
	}
	if p.InputFileID == "" {
		data, err := os.ReadFile(filepath.Join(r.files.Dir.Path(), p.File))
		if err != nil {
			return fmt.Errorf("part %d's input file: %w", p.Part, err)
		}
		if err := b.call(ctx, "upload "+p.File, func() error {
			id, err := b.api.Upload(ctx, p.File, data)
			p.InputFileID = id
			return err
		}); err != nil {
			return err
		}
		p.Status, p.UpdatedAt = "uploaded", time.Now().UTC()
		if err := b.save(); err != nil {
			return err
		}
		r.log.Info().Int("part", p.Part).Str("input_file_id", p.InputFileID).Int("requests", p.Requests).Msg("uploaded a Batch API input file")
	} else {
		// Uploaded by an earlier process, which may have created the batch and died before
		// recording it: never create a second one.
		var found *llm.BatchInfo
		if err := b.call(ctx, "list batches", func() error {
			var err error
			found, err = b.api.FindByInput(ctx, p.InputFileID, 10)
			return err
		}); err != nil {
			return err
		}
		if found != nil {
			p.BatchID, p.Status, p.UpdatedAt = found.ID, found.Status, time.Now().UTC()
			r.log.Info().Int("part", p.Part).Str("batch_id", p.BatchID).Msg("found the batch an earlier process created but did not record; following it")
			return b.save()
		}
	}
	// An attempt per record, before the batch exists: a crash after it never gives a record
	// more attempts than --max-attempts.
	ids, err := b.partIDs(*p)
	if err != nil {
		return err
	}
	for id := range ids {
		if err := r.attempts.Record(id); err != nil {
			return r.writeFailed(r.files.Attempts, err)
		}
		r.prior[id]++
	}
	meta := map[string]string{"trialcat_worker": fmt.Sprint(r.files.Number), "trialcat_part": fmt.Sprint(p.Part)}
	tries := 0
	if err := b.call(ctx, "create batch", func() error {
		// A create whose answer was lost (a dropped connection, a timeout) may have created the
		// batch: look before creating again.
		if tries++; tries > 1 {
			found, err := b.api.FindByInput(ctx, p.InputFileID, 10)
			if err != nil {
				return err
			}
			if found != nil {
				p.BatchID, p.Status = found.ID, found.Status
				return nil
			}
		}
		info, err := b.api.Create(ctx, p.InputFileID, meta)
		p.BatchID, p.Status = info.ID, info.Status
		return err
	}); err != nil {
		return err
	}
	p.UpdatedAt = time.Now().UTC()
	if err := b.save(); err != nil {
		return err
	}
	r.started.Add(int64(p.Requests))
	r.log.Info().Int("part", p.Part).Str("batch_id", p.BatchID).Int("requests", p.Requests).Msg("created a Batch API batch")
	return nil
}

// errBadFile marks a Batch API file that cannot be read as one: a line too long, or far more
// lines than the batch had requests. Reading it again would not help.
var errBadFile = errors.New("the Batch API's file is not a batch output file")

// call runs one API call, retrying what may pass (the server unreachable, a 5xx, a 429) with
// backoff for up to two minutes; a refusal (bad key, no quota) stops the run.
func (b *batchRun) call(ctx context.Context, what string, fn func() error) error {
	backoff := llm.Backoff{Base: time.Second, Max: 30 * time.Second}
	deadline := time.Now().Add(2 * time.Minute)
	for n := 1; ; n++ {
		err := fn()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return b.interrupted(ctx)
		}
		if errors.Is(err, errBadFile) || errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("%w: %w", errBadFile, err)
		}
		le := llm.Classify(err)
		switch {
		case le.Fatal():
			b.r.emit(wire.Msg{Type: wire.Fatal, Class: string(le.Class), Status: le.Status, Message: le.Refusal()})
			return exitcode.Refused(fmt.Sprintf("the Batch API refused to %s: %s", what, le.Refusal()))
		case !le.Retryable() && !le.Free():
			return fmt.Errorf("the Batch API refused to %s (%s, HTTP %d): %s", what, le.Class, le.Status, le.Message)
		case time.Now().After(deadline):
			if le.Class == llm.ClassUnreachable {
				return exitcode.Refused(fmt.Sprintf("cannot reach the Batch API to %s: %s; check --base-url or OPENAI_BASE_URL, then rerun", what, le.Message))
			}
			return fmt.Errorf("the Batch API failed to %s for two minutes: %s; rerun the same command to go on", what, le.Message)
		}
		d := backoff.Delay(n, le, nil)
		b.r.log.Warn().Str("what", what).Str("class", string(le.Class)).Dur("retry_in", d).Msg("Batch API call failed; retrying")
		if err := wait.Sleep(ctx, d); err != nil {
			return b.interrupted(ctx)
		}
	}
}

// collect reads an ended batch's output and error files into the results, failures and the
// sets of records to retry or leave for a rerun, then marks the part collected.
func (b *batchRun) collect(ctx context.Context, p *batchapi.Part, info llm.BatchInfo) error {
	r := b.r
	ids, keys, err := b.partRequests(*p, true)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	malformed, stray, lines := 0, 0, 0
	// A part's files hold one line per request; a server that sends far more (an endless or
	// lying file) is not read to its end.
	maxLines := 2*p.Requests + 100
	read := func(fileID string) error {
		if fileID == "" {
			return nil
		}
		return b.call(ctx, "download "+fileID, func() error {
			return b.api.Lines(ctx, fileID, func(line []byte) error {
				if lines++; lines > maxLines {
					return fmt.Errorf("%w: more than %d lines for a batch of %d requests", errBadFile, maxLines, p.Requests)
				}
				l, err := llm.ParseOutputLine(line)
				if err != nil {
					if malformed++; malformed > 5 {
						return nil
					}
					r.log.Error().Str("batch_id", p.BatchID).Str("file_id", fileID).Str("line", llm.Clip(string(line), 200)).
						Msg("a line of the Batch API's file is not an answer line; its record stays to do")
					return nil
				}
				model, ok := ids[l.CustomID]
				if !ok {
					if stray++; stray <= 5 {
						r.log.Error().Str("batch_id", p.BatchID).Str("custom_id", llm.Clip(l.CustomID, 80)).Msg("the Batch API answered a custom_id this part did not ask; ignored")
					}
					return nil
				}
				if seen[l.CustomID] || r.skip[l.CustomID] || l.Expired() {
					return nil // read again after a crash mid-collect; or not run (counted below)
				}
				seen[l.CustomID] = true
				return b.answer(l, model, keys[l.CustomID])
			})
		})
	}
	for _, id := range []string{info.OutputFileID, info.ErrorFileID} {
		if err := read(id); errors.Is(err, errBadFile) {
			// What was read is kept; the rest of the part stays to do.
			b.problems = append(b.problems, fmt.Sprintf("batch %s: file %s: %v", p.BatchID, id, err))
			r.log.Error().Err(err).Str("batch_id", p.BatchID).Str("file_id", id).Msg("stopped reading a Batch API file")
			break
		} else if err != nil {
			return err
		}
	}
	missing := 0
	for id := range ids {
		if seen[id] || r.skip[id] {
			continue
		}
		missing++
		// Not answered: expired, cancelled, failed as a whole, or missing from the files. Not
		// the record's fault: its attempt is given back, and a rerun submits it again.
		b.expired[id] = true
		if err := r.attempts.Refund(id); err != nil {
			r.log.Error().Err(err).Str("id", id).Msg("cannot give back an attempt")
		}
	}
	switch {
	case info.Status == "failed":
		p.Note = "the batch failed: " + joinErrs(info.Errors)
		advice := ""
		if strings.Contains(strings.ToLower(joinErrs(info.Errors)), "token") {
			advice = "; over the model's enqueued-token limit: rerun with a smaller --batch-max-requests, or fewer workers at once"
		}
		b.problems = append(b.problems, fmt.Sprintf("batch %s failed (%s)%s", p.BatchID, joinErrs(info.Errors), advice))
	case info.Status == "completed" && info.OutputFileID == "" && info.ErrorFileID == "":
		p.Note = "completed with no output file"
		b.problems = append(b.problems, fmt.Sprintf("batch %s ended completed with no output file (%d requests unanswered)", p.BatchID, missing))
	case missing > 0 && info.Status == "completed":
		p.Note = fmt.Sprintf("%d requests missing from the output files", missing)
		b.problems = append(b.problems, fmt.Sprintf("batch %s: %d requests without an answer in its files", p.BatchID, missing))
	case info.Status == "expired" || info.Status == "cancelled":
		p.Note = fmt.Sprintf("%s with %d requests not run", info.Status, missing)
	}
	if malformed > 0 {
		p.Note += fmt.Sprintf("; %d malformed lines skipped", malformed)
	}
	if stray > 0 {
		p.Note += fmt.Sprintf("; %d lines for custom_ids not asked, ignored", stray)
	}
	p.Collected, p.Status, p.UpdatedAt = true, info.Status, time.Now().UTC()
	r.log.Info().Int("part", p.Part).Str("batch_id", p.BatchID).Str("status", info.Status).Int("answered_lines", len(seen)).
		Int("not_run", missing).Str("note", p.Note).Msg("collected a Batch API batch")
	return b.save()
}

// answer turns one output line into a result row, a failure, or a retry.
// key, when set, is the request's response cache key: a valid answer is stored under it.
func (b *batchRun) answer(l llm.OutputLine, model, key string) error {
	r := b.r
	req := llm.Request{RecordID: l.CustomID, Model: model}
	res := llm.Result{Model: model, Attempts: r.prior[l.CustomID], Billed: map[llm.Charge]llm.Usage{}, Tier: llm.TierBatch}
	rep, err := b.openai.Reply(req, l)
	if rep.Model != "" {
		res.Model = rep.Model
	}
	res.Usage = rep.Usage
	res.Billed[llm.Charge{Model: res.Model, Tier: llm.TierBatch}] = rep.Usage
	var vals map[string]any
	if err == nil {
		vals, err = r.caller.Check([]byte(rep.Content))
	}
	if err == nil {
		res.Values, res.Content = vals, rep.Content
		r.skip[l.CustomID] = true
		r.store(key, res)
		return r.succeed(l.CustomID, res)
	}
	le := llm.Classify(err)
	if (le.Retryable() || le.Free()) && res.Attempts < r.spec.MaxAttempts {
		b.retry[l.CustomID] = true
		r.emit(wire.Msg{Type: wire.Retry, ID: l.CustomID, Attempt: res.Attempts, Class: string(le.Class), Status: le.Status})
		return nil
	}
	r.skip[l.CustomID] = true
	return r.fail(l.CustomID, string(le.Class), le.Message, res)
}

func joinErrs(errs []string) string {
	if len(errs) == 0 {
		return "no reason given"
	}
	return strings.Join(errs, "; ")
}

// skipInFlight keeps a live pass off the records that are in Batch API batches still running
// (a batch-api pass interrupted, then rerun live): the live pass does what the Batch API left.
func (r *runner) skipInFlight() error {
	st, err := batchapi.Load(r.files.BatchAPI)
	if err != nil {
		return err
	}
	b := &batchRun{r: r, st: st}
	n := 0
	for _, p := range st.Parts {
		if p.Collected || p.BatchID == "" {
			continue
		}
		ids, err := b.partIDs(p)
		if err != nil {
			return err
		}
		for id := range ids {
			if !r.skip[id] {
				r.skip[id] = true
				n++
			}
		}
	}
	if n > 0 {
		r.log.Warn().Int("records", n).Msg("records in Batch API batches that are still running are not asked live; rerun with --backend batch-api to collect them")
	}
	return nil
}

// exportRequests writes the request lines of the batch's records not done yet to path (the
// Batch API's input format, which vllm run-batch reads), atomically.
func (r *runner) exportRequests(ctx context.Context, path string) error {
	b := &batchRun{r: r, openai: r.openai}
	n := 0
	err := safefile.Write(path, 0o644, func(w io.Writer) error {
		return b.eachRequest(ctx, func(string) bool { return false }, func(_ string, line []byte) error {
			n++
			_, err := w.Write(line)
			return err
		})
	})
	if err != nil {
		return err
	}
	r.log.Info().Int("requests", n).Str("file", path).Msg("exported the batch's requests")
	return nil
}

// importAnswers reads an output file in the Batch API's format (from the Batch API, vllm
// run-batch, or any tool that writes it) into the batch's results and failures. Lines for
// records of other batches, or already done, are skipped; an answer a new attempt might fix
// leaves its record to do.
func (r *runner) importAnswers(ctx context.Context, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open %s: %w: %w", path, err, exitcode.ErrUsage)
	}
	defer f.Close()
	ids := map[string]string{}
	if err := batch.IDs(r.files.Batch, r.spec.IDField, func(id string) error {
		ids[id] = r.modelFor(id)
		return nil
	}); err != nil {
		return err
	}
	b := &batchRun{r: r, openai: r.openai, expired: map[string]bool{}, retry: map[string]bool{}}
	malformed, other, already := 0, 0, 0
	err = llm.EachLine(f, func(line []byte) error {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		l, err := llm.ParseOutputLine(line)
		if err != nil {
			malformed++
			return nil
		}
		model, ok := ids[l.CustomID]
		switch {
		case !ok:
			other++
			return nil
		case r.skip[l.CustomID]:
			already++
			return nil
		case l.Expired():
			return nil
		}
		if err := r.attempts.Record(l.CustomID); err != nil {
			return r.writeFailed(r.files.Attempts, err)
		}
		r.prior[l.CustomID]++
		return b.answer(l, model, "")
	})
	if err != nil {
		return err
	}
	r.mu.Lock()
	answered, failed := r.answered, r.failed
	r.mu.Unlock()
	r.log.Info().Int64("answered", answered).Int64("failed", failed).Int("to_retry", len(b.retry)).Int("malformed", malformed).
		Int("other_batches", other).Int("already_done", already).Str("file", path).Msg("imported answers")
	if malformed > 0 {
		return exitcode.Incomplete(fmt.Sprintf("worker %d: %d lines of %s are not answer lines (skipped; %d imported)", r.files.Number, malformed, path, answered))
	}
	return nil
}
