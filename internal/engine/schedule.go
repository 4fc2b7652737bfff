package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/trialcat/trialcat/internal/batch"
	"github.com/trialcat/trialcat/internal/display"
	"github.com/trialcat/trialcat/internal/exitcode"
	"github.com/trialcat/trialcat/internal/proc"
	"github.com/trialcat/trialcat/internal/profile"
	"github.com/trialcat/trialcat/internal/ratelimit"
	"github.com/trialcat/trialcat/internal/results"
	"github.com/trialcat/trialcat/internal/rundir"
	"github.com/trialcat/trialcat/internal/runspec"
	"github.com/trialcat/trialcat/internal/schema"
	"github.com/trialcat/trialcat/internal/summary"
	"github.com/trialcat/trialcat/internal/tally"
	"github.com/trialcat/trialcat/internal/wire"
)

type scheduler struct {
	opts      *Options
	deps      *Deps
	spec      *runspec.Spec
	sch       *schema.Schema
	dir       rundir.Dir
	workerBin string
	// extraEnv is added to every worker's environment (secrets that must not be in run.json).
	extraEnv []string
	// tally is the run's accounting; the display only draws it.
	tally   *tally.Tally
	display *display.Display
	// permits grants rate permits to every worker from one run-wide budget (--rpm, --tpm).
	permits *ratelimit.Server

	// procs numbers the worker processes started, for the permit server.
	procs atomic.Int64
	// hedgeLeft is how many request copies --hedge may still lend; idle counts the slots
	// with nothing left to do. Guarded by mu.
	hedgeLeft, idle int

	// firstRequest is when a worker first asked for a rate permit, or said it took a free one:
	// its first request.
	firstRequest     time.Time
	firstRequestOnce sync.Once

	mu   sync.Mutex
	live map[int]*proc.Process
	// heard is when each running worker was last heard from and last made progress.
	heard map[int]*liveness

	// merger, when set, merges each batch into the final files as it ends (see merging.go).
	merger *merger

	// split, when set, is still writing batch files: a batch is handed out once its file is
	// committed.
	split     *splitter
	stopSplit context.CancelFunc

	// stream is results.jsonl (and --stream -): each answer as the run learns of it.
	stream     *results.Stream
	streamOnce sync.Once

	// stop ends the run early with a cause (the budget was reached).
	stop       context.CancelCauseFunc
	budgetOnce sync.Once
}

// errBatchRefused marks a run stopped because a worker refused its batch (exit 1: the answers
// so far are merged and kept, so it is not a usage error).
var errBatchRefused = errors.New("a worker refused its batch")

// newScheduler is the scheduler of the plan's run, with results.jsonl open. Close it when done.
func newScheduler(p *plan, deps *Deps) (*scheduler, error) {
	spec := p.spec
	s := &scheduler{opts: p.opts, deps: deps, spec: spec, sch: p.sch, dir: p.dir, workerBin: p.workerBin,
		split: p.split, tally: tally.New(deps.Now), display: deps.Display,
		permits: ratelimit.NewServer(ratelimit.New(ratelimit.Config{RPM: spec.RPM, TPM: spec.TPM, OnLearn: func(what string, limit int) {
			deps.Log.Info(fmt.Sprintf("the server says this key allows %d %s a minute: the whole run keeps to that", limit, what))
		}})),
		live: map[int]*proc.Process{}, heard: map[int]*liveness{}}
	if p.fullBaseURL != spec.BaseURL {
		s.extraEnv = []string{"OPENAI_BASE_URL=" + p.fullBaseURL}
	}
	if p.opts.MaxCostUSD > 0 {
		// The budget stops the run by granting no more: every request must ask.
		s.permits.RequireGrants()
	}
	onTee := func(err error) {
		deps.Log.Warn("standard output closed (the reader of --stream - went away); the run goes on and results.jsonl gets every record", "error", err)
	}
	var err error
	if s.stream, err = results.OpenStream(p.dir.Stream(), spec.Layout(p.sch), deps.StreamTo, onTee); err != nil {
		return nil, err
	}
	return s, nil
}

// startMerging merges each batch into the final files as it ends, so that at the end only the
// last ones are; when it cannot, everything is merged at the end.
func (s *scheduler) startMerging(ctx context.Context) {
	m, err := startMerge(s.dir, s.spec, s.sch)
	if err != nil {
		s.deps.Log.Warn("cannot start merging as the batches end; they are merged at the end", "error", err)
		return
	}
	m.follow(context.WithoutCancel(ctx))
	s.merger = m
}

// startSplit writes the batch files still to write beside the workers: each batch is handed out
// the moment its file is committed. A run that stops early (the API refused it, Ctrl-C) stops
// the split too; the rerun writes the batch files it did not.
func (s *scheduler) startSplit(ctx context.Context) {
	if s.split == nil || s.stopSplit != nil {
		return
	}
	splitCtx, stop := context.WithCancel(ctx)
	s.stopSplit = stop
	go func() { _ = s.split.run(splitCtx) }() // its error reaches the queue through split.wait
}

// waitSplit returns once a split started by startSplit has ended.
func (s *scheduler) waitSplit() {
	if s.split != nil && s.stopSplit != nil {
		<-s.split.done
	}
}

// close stops and waits for the split, and closes the permit server and results.jsonl.
func (s *scheduler) close() {
	if s.stopSplit != nil {
		s.stopSplit()
	}
	s.waitSplit()
	s.permits.Close()
	s.stream.Close()
}

// run keeps opts.Workers worker processes busy until every batch is done, the API refuses the
// run, or ctx is cancelled.
func (s *scheduler) run(ctx context.Context) error {
	s.startSplit(ctx)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	s.stop = cancel
	s.tally.Start(s.spec.Input.Records)
	s.display.Start(s.tally)
	defer s.display.Close() // before finish prints the summary
	if s.opts.MaxCostUSD > 0 {
		spent, err := spentSoFar(s.dir, s.spec)
		if err != nil {
			return err
		}
		s.tally.AddCost(spent)
		if spent >= s.opts.MaxCostUSD {
			return s.budgetError(spent)
		}
	}

	go s.watchHardStop(ctx)
	if s.spec.Hedge > 0 && s.spec.Provider == runspec.ProviderOpenAI && !s.spec.IsBatchAPI() {
		s.hedgeLeft = int(s.spec.Hedge / 100 * float64(s.spec.Input.Records))
	}

	queue := make(chan batch.Range)
	var wg sync.WaitGroup
	for slot := 0; slot < s.opts.Workers && slot < len(s.spec.Batches); slot++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.display.WorkerEnded(slot)
			var w *serving
			defer func() { s.release(w) }()
			for b := range queue {
				if err := s.runBatch(ctx, slot, b, &w); err != nil {
					cancel(err)
				}
				s.merger.batchDone(b.Number)
			}
			// Nothing is left to hand out: this slot's requests go to the busy workers' tail.
			s.lendIdle()
		}()
	}
	go s.logRetries(ctx, 10*time.Second)
	for _, b := range s.spec.Batches {
		if err := s.split.wait(ctx, b.Number); err != nil {
			if errors.Is(err, errSplit) {
				cancel(err)
			}
			break
		}
		select {
		case queue <- b:
			continue
		case <-ctx.Done():
		}
		break
	}
	close(queue)
	wg.Wait()
	if s.stopSplit != nil {
		s.stopSplit()
	}
	s.permits.Close()

	cause := context.Cause(ctx)
	switch {
	case errors.Is(cause, exitcode.ErrFatalAPI), errors.Is(cause, exitcode.ErrBudget), errors.Is(cause, exitcode.ErrStorage), errors.Is(cause, errSplit), errors.Is(cause, errBatchRefused):
		return cause
	case ctx.Err() != nil:
		return fmt.Errorf("%w: %w", cause, exitcode.ErrInterrupted)
	}
	return nil
}

// serving is one worker process that stays up across batches (worker --serve): a slot keeps
// one and assigns it the slot's batches one after another.
type serving struct {
	p *proc.Process
	// key names the process to the permit server: its permit sequence numbers are its own.
	key int
	// batch is the batch its lines belong to, -1 between batches.
	batch atomic.Int64
	// finished gets the process's finished lines.
	finished chan wire.Msg
	// exited is closed once the process has exited and its output is drained; exit is then set.
	exited chan struct{}
	exit   proc.Exit
}

// startServing starts a serving worker process for a slot.
func (s *scheduler) startServing(ctx context.Context, slot int) (*serving, error) {
	w := &serving{key: int(s.procs.Add(1)), finished: make(chan wire.Msg, 1), exited: make(chan struct{})}
	w.batch.Store(-1)
	p, err := proc.Start(ctx, proc.Spec{
		// Its log lines name their batch themselves (worker=N).
		Name:   "worker",
		Path:   s.workerBin,
		Args:   []string{"--serve", "--events", "--heartbeat", s.heartbeat().String()},
		Env:    append(workerEnv(s.deps.Getenv, s.spec.Provider == runspec.ProviderOpenAI), append(s.extraEnv, workerProcs(s.deps.Getenv, runtime.GOMAXPROCS(0), s.opts.Workers)...)...),
		Logger: s.deps.Log,
		// Grants go to the process's stdin, known before its first line is read.
		OnStart:  func(p *proc.Process) { s.permits.Attach(ctx, w.key, p.Stdin()) },
		OnStdout: func(line []byte) { s.onServingLine(w, line) },
		Stdin:    true,
		Grace:    s.grace(),
	})
	if err != nil {
		return nil, fmt.Errorf("start a worker for slot %d: %w", slot, err)
	}
	w.p = p
	go func() {
		w.exit = p.Wait()
		s.permits.Forget(w.key)
		close(w.exited)
	}()
	s.deps.Log.Debug("worker process started", "slot", slot, "pid", p.PID())
	return w, nil
}

// onServingLine routes one stdout line of a serving process: a finished line to the slot that
// onServingLine takes one stdout line of a serving process, decoded once: a finished line goes
// to the slot that waits for it, a permit line to the rate-limit server, an event to the tally
// under the batch the process holds.
func (s *scheduler) onServingLine(w *serving, line []byte) {
	n := int(w.batch.Load())
	m, err := wire.Decode(line)
	switch {
	case err != nil:
		s.deps.Log.Named(fmt.Sprintf("worker-%d", n)).Warn("unexpected output on stdout", "line", string(line))
	case m.Type == wire.Finished:
		select {
		case w.finished <- m:
		default:
			s.deps.Log.Warn("a worker said it finished a batch it was not assigned; ignored", "line", string(line))
		}
	case m.IsPermit():
		if m.Type == wire.Acquire || m.Type == wire.Took {
			s.firstRequestOnce.Do(func() { s.firstRequest = s.deps.Now() })
		}
		s.hear(n, m)
		s.permits.Handle(w.key, m)
	case n < 0:
		s.deps.Log.Warn("unexpected output on a worker's stdout between batches", "line", string(line))
	default:
		s.onEvent(n, m)
	}
}

// release ends a slot's serving process: EOF on its stdin tells it the run has no more batches.
func (s *scheduler) release(w *serving) {
	if w == nil {
		return
	}
	_ = w.p.Stdin().Close()
	select {
	case <-w.exited:
	case <-time.After(s.grace()):
		w.p.Stop()
		<-w.exited
	}
	if w.exit.Code != exitcode.OK && w.exit.Code != exitcode.Interrupted {
		s.deps.Log.Warn("a worker process ended badly after its last batch", "pid", w.p.PID(), "exit", w.exit.String())
	}
}

// runBatch runs batch b on the slot's serving process *w, starting one when there is none or
// the last one died, and starting another after a crash up to --max-restarts times. It returns
// an error only when the whole run must stop.
func (s *scheduler) runBatch(ctx context.Context, slot int, b batch.Range, w **serving) error {
	name := fmt.Sprintf("worker-%d", b.Number)
	log := s.deps.Log.Named(name)
	restarts := 0
	for {
		if ctx.Err() != nil {
			return nil
		}
		before := progress(s.dir.Worker(b.Number))
		if *w == nil {
			started, err := s.startServing(ctx, slot)
			if err != nil {
				s.tally.WorkerEnded(b.Number, "not started", -1)
				return err
			}
			*w = started
		}
		sp := *w
		s.tally.WorkerStarted(b.Number, b.Count)
		s.tally.SetSlot(b.Number, slot)
		s.display.WorkerStarted(slot, b.Number)
		sp.batch.Store(int64(b.Number))
		s.setLive(b.Number, sp.p)
		stopWatch := s.watch(ctx, b.Number, sp.p, log)
		log.Debug("assigned", "pid", sp.p.PID(), "batch", b.Number, "records", b.Count)
		assigned := time.Now()
		// A failed write means the process is gone: its exit is handled below.
		_, _ = sp.p.Stdin().Write(wire.Encode(wire.Msg{Type: wire.Assign, Batch: s.dir.Batch(b.Number)}))

		var exit proc.Exit
		why := ""     // what the worker said of a batch it finished
		said := false // the worker reported the batch's end itself (a crash says nothing)
		select {
		case m := <-sp.finished:
			exit, why, said = proc.Exit{Code: m.Code, Duration: time.Since(assigned)}, m.Message, true
			if m.Code != exitcode.OK && m.Code != exitcode.Failed {
				// It exits with that code: wait for it, and for the rest of its output.
				<-sp.exited
				exit, *w = sp.exit, nil
			}
		case <-sp.exited:
			exit, *w = sp.exit, nil
		}
		stopWatch()
		sp.batch.Store(-1)
		s.setLive(b.Number, nil)
		s.tally.WorkerEnded(b.Number, exit.String(), exit.Code)

		switch {
		case exit.Code == exitcode.OK:
			log.Info("finished", "exit", exit.String(), "seconds", fmt.Sprintf("%.1f", exit.Duration.Seconds()))
			return nil
		case exit.Code == exitcode.Failed:
			if why != "" {
				log.Warn("finished with failed records: "+why, "exit", exit.String())
			} else {
				log.Warn("finished with failed records", "exit", exit.String())
			}
			return nil
		case exit.Code == exitcode.Storage:
			msg := s.tally.Snapshot().FatalMessage
			if msg == "" {
				msg = name + " could not write its files"
			}
			return exitcode.StorageFailed(msg)
		case said && exit.Code == exitcode.Usage:
			// The worker refused the batch (it was changed after the split, it cannot be read,
			// another worker holds it): a restart would be refused the same way.
			return fmt.Errorf("%s refused %s: %s: %w", name, rundir.BatchName(b.Number), why, errBatchRefused)
		case exit.Code == exitcode.FatalAPI:
			if msg := s.tally.Snapshot().FatalMessage; msg != "" {
				return exitcode.Refused(msg)
			}
			return fmt.Errorf("%s: %w", name, exitcode.ErrFatalAPI)
		case ctx.Err() != nil:
			log.Info("stopped", "exit", exit.String())
			return nil
		case exit.Code == exitcode.Interrupted:
			log.Warn("stopped on its own", "exit", exit.String())
			return nil
		}
		// A process that answered or failed records, or spent attempts, made progress: its
		// restart is free. Spent attempts bound this (a record whose every attempt died with
		// its worker fails as worker_crashed), so only crashes that do nothing use up
		// --max-restarts.
		if progress(s.dir.Worker(b.Number)) > before {
			s.tally.Restart(b.Number)
			log.Warn("crashed; restarting it on the same batch, it resumes where it was (it made progress: not counted against --max-restarts)", "exit", exit.String())
			continue
		}
		if restarts >= s.opts.MaxRestarts {
			log.Error("crashed; no restarts left (--max-restarts): its unfinished records remain for a rerun", "exit", exit.String(), "restarts", restarts)
			return nil
		}
		restarts++
		s.tally.Restart(b.Number)
		log.Warn("crashed without progress; restarting it on the same batch", "exit", exit.String(), "restart", restarts, "of", s.opts.MaxRestarts)
	}
}

// lendIdle counts one more idle slot and lends the idle slots' requests, and a share of what is
// left of the --hedge budget, to the workers still running (a boost line each): they send
// copies of their requests running past the run's p90 latency.
func (s *scheduler) lendIdle() {
	p90 := s.tally.P90()
	model, _ := s.tally.Latencies() // zero without enough answers: the workers use the p90
	s.mu.Lock()
	s.idle++
	if s.hedgeLeft <= 0 || len(s.live) == 0 || p90 <= 0 {
		s.mu.Unlock()
		return
	}
	busy := make([]*proc.Process, 0, len(s.live))
	for _, p := range s.live {
		busy = append(busy, p)
	}
	// Each running worker may run its share of the idle slots' requests as copies (rounded up:
	// at most one copy more per worker than slots lent), and gets a budget of that many copies
	// now; the rest of the budget waits for the next slot to go idle, so that workers that end
	// soon do not take it with them.
	extra := (s.idle*s.spec.Concurrency + len(busy) - 1) / len(busy)
	grants := make([]int, len(busy))
	for i := range busy {
		grants[i] = min(extra, s.hedgeLeft)
		s.hedgeLeft -= grants[i]
	}
	idle := s.idle // read under the lock: other slots go idle meanwhile
	s.mu.Unlock()
	for i, p := range busy {
		if grants[i] == 0 {
			continue
		}
		// A worker gone meanwhile fails the write; its grant is not given back (it is a bound).
		_, _ = p.Stdin().Write(wire.Encode(wire.Msg{Type: wire.Boost, Extra: extra, Budget: grants[i], P90MS: p90.Milliseconds(),
			LatBaseMS: model.BaseMS, LatPerKTokMS: model.PerKTokMS, LatMedian: model.Median}))
	}
	s.deps.Log.Debug("lent idle slots to the running workers for hedging", "idle_slots", idle, "running", len(busy), "extra_each", extra, "p90", p90,
		"latency_base_ms", model.BaseMS, "latency_ms_per_ktok", model.PerKTokMS, "latency_median_factor", model.Median)
}

// logRetries logs, every interval, the failed attempts of the last interval by class, so that
// retries show in the log at info in aggregate rather than one line each.
func (s *scheduler) logRetries(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	last := map[string]int64{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := s.tally.Snapshot().RetriesByClass
		var parts []string
		for _, c := range slices.Sorted(maps.Keys(now)) {
			if d := now[c] - last[c]; d > 0 {
				parts = append(parts, fmt.Sprintf("%d × %s", d, c))
			}
		}
		last = now
		if len(parts) > 0 {
			s.deps.Log.Info(fmt.Sprintf("retries in the last %s: %s", every, strings.Join(parts, ", ")))
		}
	}
}

// liveness is what the coordinator last heard from one worker process.
type liveness struct {
	heard, progressed time.Time
	started, done     int64 // the last heartbeat's counters
}

// heartbeat is the interval the workers are asked to beat at: often enough that a few beats
// fit in --stall-after.
func (s *scheduler) heartbeat() time.Duration {
	return min(5*time.Second, max(s.stallAfter()/4, 50*time.Millisecond))
}

func (s *scheduler) stallAfter() time.Duration {
	if s.opts.StallAfter > 0 {
		return s.opts.StallAfter
	}
	return DefaultStallAfter
}

// hear notes a line from worker n: it is alive, and it made progress when a heartbeat's
// counters moved, a request waits for a permit (waiting on us is not a stall), or a record or
// attempt was reported.
func (s *scheduler) hear(n int, m wire.Msg) {
	now := s.deps.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.heard[n]
	if l == nil {
		return
	}
	l.heard = now
	switch m.Type {
	case wire.Heartbeat:
		if m.Started != l.started || m.Done != l.done || m.Waiting > 0 {
			l.progressed, l.started, l.done = now, m.Started, m.Done
		}
	case wire.Record, wire.Retry, wire.Start, wire.Acquire, wire.Took:
		l.progressed = now
	}
}

// watch kills worker n's process p (SIGKILL: a stopped process does not act on SIGTERM) when it
// has not been heard from for --stall-after, or has started no attempt and finished no record
// for 2 × --timeout + 60 s while it has work (a deadlock, a hung file system). The run then
// restarts it like a crashed one. The returned func stops the watch.
func (s *scheduler) watch(ctx context.Context, n int, p *proc.Process, log hclog.Logger) (stop func()) {
	now := s.deps.Now()
	s.mu.Lock()
	s.heard[n] = &liveness{heard: now, progressed: now}
	s.mu.Unlock()
	done := make(chan struct{})
	stallAfter := s.stallAfter()
	idleAfter := 2*time.Duration(s.spec.Timeout) + time.Minute
	go func() {
		t := time.NewTicker(min(max(min(stallAfter, idleAfter)/10, 10*time.Millisecond), time.Second))
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			now := s.deps.Now()
			s.mu.Lock()
			lp := s.heard[n]
			var l liveness
			if lp != nil {
				l = *lp
			}
			s.mu.Unlock()
			if lp == nil {
				return
			}
			var why string
			switch {
			case now.Sub(l.heard) > stallAfter:
				why = fmt.Sprintf("not heard from for %s (--stall-after %s): stopped, deadlocked or stuck on a hung file system", now.Sub(l.heard).Round(time.Second), stallAfter)
			case now.Sub(l.progressed) > idleAfter:
				why = fmt.Sprintf("started no request and finished no record for %s (2 × --timeout + 60s)", now.Sub(l.progressed).Round(time.Second))
			default:
				continue
			}
			log.Warn("killing a stalled worker; it is restarted on its batch like a crashed one", "pid", p.PID(), "why", why)
			p.Kill()
			return
		}
	}()
	return func() {
		close(done)
		s.mu.Lock()
		delete(s.heard, n)
		s.mu.Unlock()
	}
}

// progress is how much a batch's worker has written: its results, failures and attempts files
// only grow, so a larger sum after a process ended means it did something.
func progress(f rundir.Worker) int64 {
	var n int64
	for _, p := range []string{f.Results, f.Failures, f.Attempts} {
		if st, err := os.Stat(p); err == nil {
			n += st.Size()
		}
	}
	return n
}

func (s *scheduler) grace() time.Duration {
	if s.opts.Grace > 0 {
		return s.opts.Grace
	}
	return DefaultGrace
}

func (s *scheduler) setLive(n int, p *proc.Process) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p == nil {
		delete(s.live, n)
	} else {
		s.live[n] = p
	}
}

// watchHardStop kills every worker at once when a second interrupt arrives.
func (s *scheduler) watchHardStop(ctx context.Context) {
	if s.deps.HardStop == nil {
		return
	}
	select {
	case <-s.deps.HardStop:
	case <-ctx.Done():
		select {
		case <-s.deps.HardStop:
		case <-time.After(s.grace() + time.Second):
			return
		}
	}
	s.deps.Log.Warn("second interrupt: killing all workers now")
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.live {
		p.Kill()
	}
}

// streamRow appends an answered record's row to the results stream. A stream that cannot be
// written is said once; the results files stay the record of truth.
func (s *scheduler) streamRow(cells []string) {
	if s.stream == nil || len(cells) == 0 {
		return
	}
	if err := s.stream.Add(cells); err != nil {
		s.streamOnce.Do(func() {
			s.deps.Log.Warn("cannot write the results stream; the results files and the final merge are not affected", "error", err)
		})
	}
}

// completeStream adds to the stream the answers it has not had: those of earlier passes and of
// workers whose events were lost (a crash between the row and its event).
// answered is the run's count of answered records: a stream holding that many IDs has them all,
// and no file is read again.
func (s *scheduler) completeStream(ctx context.Context, layout results.Layout, answered int64) error {
	if s.stream == nil || s.stream.Len() >= answered {
		return nil
	}
	for _, b := range s.spec.Batches {
		if err := ctx.Err(); err != nil {
			return err
		}
		header := layout.Header()
		if _, _, err := results.Read(s.dir.Worker(b.Number).Results, func(row []string) error {
			if len(row) < len(header) {
				row = results.Upgraded(row, len(header)) // written by an earlier version
			}
			s.streamRow(row)
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// onLine takes one line of worker n's stdout: decoded once, then a permit line goes to the
// onEvent takes one event of the worker of batch n.
func (s *scheduler) onEvent(n int, m wire.Msg) {
	m.Worker = n // the coordinator knows better than the worker's output
	s.hear(n, m)
	if m.Type == wire.Heartbeat {
		return
	}
	s.tally.Event(m)
	if m.Type == wire.Record && m.OK {
		s.streamRow(m.Cells)
	}
	if max := s.opts.MaxCostUSD; max > 0 && m.Type == wire.Record {
		if spent := s.tally.Spent(); spent >= max {
			s.budgetOnce.Do(func() {
				s.deps.Log.Warn(fmt.Sprintf("budget reached: $%.4f spent of --max-cost $%.4f; stopping all workers (no new requests)", spent, max))
				s.stop(s.budgetError(spent))
			})
		}
	}
}

func (s *scheduler) budgetError(spent float64) error {
	return fmt.Errorf("$%.4f spent of --max-cost $%.4f; raise --max-cost and rerun the same command to continue: %w", spent, s.opts.MaxCostUSD, exitcode.ErrBudget)
}

// workerRuns returns what happened per batch, in batch order.
func (s *scheduler) workerRuns() []summary.WorkerRun {
	out := make([]summary.WorkerRun, 0, len(s.spec.Batches))
	for _, b := range s.spec.Batches {
		w, ok := s.tally.Worker(b.Number)
		if !ok {
			out = append(out, summary.WorkerRun{Batch: b.Number, Records: b.Count, Exit: "not started"})
			continue
		}
		out = append(out, summary.WorkerRun{Batch: b.Number, Records: b.Count, Seconds: w.Seconds, Exit: w.Exit,
			ExitCode: w.ExitCode, Restarts: int(w.Restarts), Started: true, MaxRSSKB: w.MaxRSSKB, Retries: w.Retries,
			Processes: w.Processes, SpawnReadyMS: w.ReadyMS, ExitSeenMS: w.ExitSeenMS, Slot: w.Slot})
	}
	return out
}

// workerProcs is each of n workers' share of the cores this process may use (GOMAXPROCS, its
// cgroup's quota included), as GOMAXPROCS for the worker (none
// when the user set GOMAXPROCS: workerEnv passes theirs). A worker's own work is a millisecond a
// record between long waits on the network; with a processor each rather than every worker
// scheduling its goroutines over all of the machine's, n workers on few cores spend about a
// fifth less CPU on the same records (BENCHMARKS.md, the CPU ceiling).
func workerProcs(getenv func(string) string, cores, n int) []string {
	if getenv("GOMAXPROCS") != "" || n <= 0 {
		return nil
	}
	return []string{"GOMAXPROCS=" + strconv.Itoa(max(1, (cores+n-1)/n))}
}

// workerEnv is the explicit environment of a worker: what it needs to run and reach the API,
// and the key only when the run uses the API.
func workerEnv(getenv func(string) string, withKey bool) []string {
	keep := []string{"PATH", "HOME", "TMPDIR", "TZ", "LANG", "LC_ALL", "SSL_CERT_FILE", "SSL_CERT_DIR",
		"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy", "GOCOVERDIR", "GOMAXPROCS", "GOGC", profile.EnvDir}
	if withKey {
		keep = append(keep, "OPENAI_API_KEY")
	}
	var env []string
	for _, k := range keep {
		if v := getenv(k); v != "" {
			env = append(env, k+"="+v)
		}
	}
	return env
}
