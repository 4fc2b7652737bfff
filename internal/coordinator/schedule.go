package coordinator

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"github.com/trialcat/trialcat/internal/batch"
	"github.com/trialcat/trialcat/internal/display"
	"github.com/trialcat/trialcat/internal/event"
	"github.com/trialcat/trialcat/internal/exitcode"
	"github.com/trialcat/trialcat/internal/proc"
	"github.com/trialcat/trialcat/internal/ratelimit"
	"github.com/trialcat/trialcat/internal/runspec"
	"github.com/trialcat/trialcat/internal/summary"
)

var batchFile = regexp.MustCompile(`^batch_\d+\.json$`)

// Worker exit codes the coordinator acts on; any other ending is a crash and is restarted.
const (
	workerOK          = 0
	workerSomeFailed  = 1
	workerFatalAPI    = 3
	workerInterrupted = 130
)

type scheduler struct {
	opts      *Options
	deps      *Deps
	spec      *runspec.Spec
	workerBin string
	display   *display.Display
	// permits grants rate permits to every worker from one run-wide budget (--rpm, --tpm).
	permits *ratelimit.Server

	mu   sync.Mutex
	runs map[int]*summary.WorkerRun
	live map[int]*proc.Process

	// stop ends the run early with a cause (the budget was reached).
	stop       context.CancelCauseFunc
	budgetOnce sync.Once
}

func newScheduler(opts *Options, deps *Deps, spec *runspec.Spec, workerBin string) *scheduler {
	return &scheduler{opts: opts, deps: deps, spec: spec, workerBin: workerBin,
		display: deps.Display,
		permits: ratelimit.NewServer(ratelimit.New(ratelimit.Config{RPM: spec.RPM, TPM: spec.TPM})),
		runs:    map[int]*summary.WorkerRun{}, live: map[int]*proc.Process{}}
}

// run keeps opts.Workers worker processes busy until every batch is done, the API refuses the
// run, or ctx is cancelled.
func (s *scheduler) run(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	s.stop = cancel
	s.display.Start(s.spec.Input.Records)
	defer s.display.Close() // before finish prints the summary
	if s.opts.MaxCostUSD > 0 {
		spent, err := spentSoFar(s.opts.Out, s.spec)
		if err != nil {
			return err
		}
		s.display.AddCost(spent)
		if spent >= s.opts.MaxCostUSD {
			return s.budgetError(spent)
		}
	}

	go s.watchHardStop(ctx)

	queue := make(chan batch.Range)
	var wg sync.WaitGroup
	for i := 0; i < s.opts.Workers && i < len(s.spec.Batches); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range queue {
				if err := s.runBatch(ctx, b); err != nil {
					cancel(err)
				}
			}
		}()
	}
	for _, b := range s.spec.Batches {
		select {
		case queue <- b:
			continue
		case <-ctx.Done():
		}
		break
	}
	close(queue)
	wg.Wait()
	s.permits.Close()

	cause := context.Cause(ctx)
	switch {
	case errors.Is(cause, exitcode.ErrFatalAPI), errors.Is(cause, exitcode.ErrBudget):
		return cause
	case ctx.Err() != nil:
		return fmt.Errorf("%w: %w", cause, exitcode.ErrInterrupted)
	}
	return nil
}

// runBatch runs one batch's worker, restarting it after a crash up to --max-restarts times.
// It returns an error only when the whole run must stop.
func (s *scheduler) runBatch(ctx context.Context, b batch.Range) error {
	name := fmt.Sprintf("worker-%d", b.Number)
	log := s.deps.Log.Named(name)
	wr := &summary.WorkerRun{Batch: b.Number, Records: b.Count, Started: true}
	s.mu.Lock()
	s.runs[b.Number] = wr
	s.mu.Unlock()
	s.display.WorkerStarted(b.Number, b.Count)
	defer func() {
		s.mu.Lock()
		exit := wr.Exit
		s.mu.Unlock()
		s.display.WorkerEnded(b.Number, exit)
	}()
	start := s.deps.Now()
	defer func() {
		s.mu.Lock()
		wr.Seconds = s.deps.Now().Sub(start).Seconds()
		s.mu.Unlock()
	}()

	for {
		if ctx.Err() != nil {
			return nil
		}
		// Permit requests can arrive before Start returns: grants wait until the process exists.
		ready := make(chan struct{})
		var p *proc.Process
		stdin := writerFunc(func(b []byte) (int, error) {
			<-ready
			if p == nil {
				return 0, os.ErrClosed
			}
			return p.Stdin().Write(b)
		})
		p, err := proc.Start(ctx, proc.Spec{
			Name:   name,
			Path:   s.workerBin,
			Args:   []string{"--batch", filepath.Join(s.opts.Out, batch.FileName(b.Number)), "--events"},
			Env:    workerEnv(s.deps.Getenv, s.spec.Provider == runspec.ProviderOpenAI),
			Logger: s.deps.Log,
			OnStdout: func(line []byte) {
				if !s.permits.Handle(ctx, b.Number, line, stdin) {
					s.onEvent(b.Number, line)
				}
			},
			Stdin: true,
			Grace: s.grace(),
		})
		close(ready)
		if err != nil {
			return fmt.Errorf("start %s: %w", name, err)
		}
		s.setLive(b.Number, p)
		log.Debug("started", "pid", p.PID(), "batch", b.Number, "records", b.Count)
		exit := p.Wait()
		s.setLive(b.Number, nil)
		s.permits.Forget(b.Number)

		s.mu.Lock()
		wr.Exit, wr.ExitCode = exit.String(), exit.Code
		s.mu.Unlock()
		switch {
		case exit.Code == workerOK:
			log.Info("finished", "exit", exit.String(), "seconds", fmt.Sprintf("%.1f", exit.Duration.Seconds()))
			return nil
		case exit.Code == workerSomeFailed:
			log.Warn("finished with failed records", "exit", exit.String())
			return nil
		case exit.Code == workerFatalAPI:
			return fmt.Errorf("%s: %w", name, exitcode.ErrFatalAPI)
		case ctx.Err() != nil:
			log.Info("stopped", "exit", exit.String())
			return nil
		case exit.Code == workerInterrupted:
			log.Warn("stopped on its own", "exit", exit.String())
			return nil
		}
		s.mu.Lock()
		restarts := wr.Restarts
		s.mu.Unlock()
		if restarts >= s.opts.MaxRestarts {
			log.Error("crashed; no restarts left (--max-restarts), its unfinished records are listed as not_processed", "exit", exit.String(), "restarts", restarts)
			return nil
		}
		s.mu.Lock()
		wr.Restarts++
		s.mu.Unlock()
		s.display.Restart(b.Number)
		log.Warn("crashed; restarting it on the same batch, it resumes where it was", "exit", exit.String(), "restart", restarts+1, "of", s.opts.MaxRestarts)
	}
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

func (s *scheduler) onEvent(n int, line []byte) {
	ev, err := event.Parse(line)
	if err != nil {
		s.deps.Log.Named(fmt.Sprintf("worker-%d", n)).Warn("unexpected output on stdout", "line", string(line))
		return
	}
	ev.Worker = n
	s.display.Event(ev)
	if ev.Type == event.Retry || ev.Type == event.End {
		s.mu.Lock()
		if wr, ok := s.runs[n]; ok {
			if ev.Type == event.Retry {
				wr.Retries++
			}
			wr.MaxRSSKB = max(wr.MaxRSSKB, ev.MaxRSSKB)
		}
		s.mu.Unlock()
	}
	if max := s.opts.MaxCostUSD; max > 0 && ev.Type == event.Record {
		if spent := s.display.Snapshot().CostUSD; spent >= max {
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
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]summary.WorkerRun, 0, len(s.spec.Batches))
	for _, b := range s.spec.Batches {
		if wr, ok := s.runs[b.Number]; ok {
			out = append(out, *wr)
		} else {
			out = append(out, summary.WorkerRun{Batch: b.Number, Records: b.Count, Exit: "not started"})
		}
	}
	return out
}

// writerFunc adapts a function to io.Writer.
type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// workerEnv is the explicit environment of a worker: what it needs to run and reach the API,
// and the key only when the run uses the API.
func workerEnv(getenv func(string) string, withKey bool) []string {
	keep := []string{"PATH", "HOME", "TMPDIR", "TZ", "LANG", "LC_ALL", "SSL_CERT_FILE", "SSL_CERT_DIR",
		"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy", "GOCOVERDIR"}
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
