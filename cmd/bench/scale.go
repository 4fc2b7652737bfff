package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/trialcat/trialcat/internal/batch"
	"github.com/trialcat/trialcat/internal/fakeai"
	"github.com/trialcat/trialcat/internal/input"
	"github.com/trialcat/trialcat/internal/rundir"
	"github.com/trialcat/trialcat/internal/wire"
)

// scaleResult is the overhead-and-scale scenario.
type scaleResult struct {
	WorkerStart []workerStart `json:"worker_start"`
	Runs        []scaleRun    `json:"runs"`
	Split       *splitTiming  `json:"split,omitempty"`
	Merge       *mergeTiming  `json:"merge,omitempty"`
}

// workerStart is bin/worker run by hand on a one-record batch, again and again.
type workerStart struct {
	Provider string `json:"provider"`
	Reps     int    `json:"reps"`
	// Ready is exec until the worker's "batch started" line; Exit until it exited (one record
	// answered, files closed).
	ReadyP50MS float64 `json:"ready_p50_ms"`
	ReadyP90MS float64 `json:"ready_p90_ms"`
	ExitP50MS  float64 `json:"exit_p50_ms"`
	ExitP90MS  float64 `json:"exit_p90_ms"`
	MaxRSSKB   int64   `json:"max_rss_kb"`
	MaxAnonKB  int64   `json:"max_private_kb"`
}

// scaleRun is one whole coordinator run in the scale scenario.
type scaleRun struct {
	Name        string  `json:"name"`
	Provider    string  `json:"provider"` // offline, or fake (the fake API at latencyModel)
	Records     int     `json:"records"`
	Workers     int     `json:"workers"`
	Concurrency int     `json:"concurrency"`
	InputMB     float64 `json:"input_mb"`
	WallS       float64 `json:"wall_s"`
	Succeeded   int64   `json:"succeeded"`
	Phases      phases  `json:"phases"`
	// OverheadShare is Phases.OverheadS / WallS: the coordinator's time outside the workers'
	// span (start-up, checking the input, writing the batches, merging, summary, report).
	OverheadShare float64 `json:"overhead_share"`
	// CoordCPUS is the coordinator's own CPU (not its workers'); CoordCPUShare = CoordCPUS/WallS.
	CoordCPUS     float64 `json:"coordinator_cpu_s"`
	CoordCPUShare float64 `json:"coordinator_cpu_share"`
	WorkersCPUS   float64 `json:"workers_cpu_s"`
	// OtherCPUS is CPU the machine spent on anything else during the run (including this
	// program's fake, when there is one).
	OtherCPUS float64 `json:"other_cpu_s"`
	// CoordRSSKB is the coordinator's peak RSS (largest VmHWM polled from outside);
	// WorkerRSSKB the largest of any worker's. VmHWM counts one address space only.
	CoordRSSKB  int64 `json:"coordinator_peak_rss_kb"`
	WorkerRSSKB int64 `json:"worker_peak_rss_kb"`
	// CoordAnonKB and WorkerAnonKB are the peaks of private memory (RssAnon): RSS without the
	// binary's shared, file-backed pages.
	CoordAnonKB int64 `json:"coordinator_peak_private_kb"`
	// FirstStreamMS is, for a run against the fake (with --stream -), the time from the fake's
	// first answer to the coordinator's first line on stdout.
	FirstStreamMS float64 `json:"first_stream_after_answer_ms,omitempty"`
	WorkerAnonKB  int64   `json:"worker_peak_private_kb"`
	// SummaryCoordRSSKB and SummaryWorkerRSSKB are what summary.json reports (getrusage and
	// wait4's ru_maxrss), which on Linux also count the parent's RSS at the fork.
	SummaryCoordRSSKB  int64 `json:"summary_coordinator_max_rss_kb"`
	SummaryWorkerRSSKB int64 `json:"summary_worker_max_rss_kb"`
	// AtAPILatency extrapolates OverheadShare to a wall at real API latency (RealLatencyS per
	// request): the same overhead over Records × RealLatencyS / (Workers × Concurrency).
	RealLatencyS      float64   `json:"real_latency_s,omitempty"`
	OverheadShareReal float64   `json:"overhead_share_at_real_latency,omitempty"`
	Run               *coordRun `json:"run"`
}

// splitTiming times the coordinator's input passes in process on the largest input: the full
// check (input.Scan: IDs, UTF-8, duplicates, SHA-256) and writing the batch files.
type splitTiming struct {
	Records int     `json:"records"`
	ScanS   float64 `json:"scan_s"`
	WriteS  float64 `json:"write_batches_s"`
}

// mergeTiming is `coordinator merge --out DIR` on the largest run.
type mergeTiming struct {
	Records   int     `json:"records"`
	Reps      int     `json:"reps"`
	WallS     float64 `json:"wall_s"` // best of Reps
	CPUS      float64 `json:"cpu_s"`
	MaxRSSKB  int64   `json:"max_rss_kb"`
	MaxAnonKB int64   `json:"max_private_kb"`
}

// realLatencyS is the mean latency of a real structured-output request to a small model
// (gpt-5-mini class): a few seconds. Used only to extrapolate the overhead share.
const realLatencyS = 3.0

func (b *bench) scale(ctx context.Context) (any, error) {
	fmt.Fprintf(b.out, "## Overhead and scale\n\n")
	res := &scaleResult{}
	reps := 15
	if b.cfg.Quick {
		reps = 3
	}
	for _, prov := range []string{"offline", "fake"} {
		ws, err := b.workerStart(ctx, prov, reps)
		if err != nil {
			return res, err
		}
		res.WorkerStart = append(res.WorkerStart, *ws)
	}

	type plan struct {
		name        string
		provider    string
		real        bool
		records     int
		workers     int
		concurrency int
	}
	plans := []plan{
		{"offline-flat-10k", "offline", false, 10_000, 20, 1},
		{"fake-real-10k", "fake", true, 10_000, 20, 2},
		{"offline-flat-1m", "offline", false, 1_000_000, 20, 1},
		// The merge holds one batch's rows at a time: fewer, larger batches need more memory.
		{"offline-flat-1m-w4", "offline", false, 1_000_000, 4, 1},
	}
	if b.cfg.Quick {
		plans = []plan{
			{"offline-flat-5k", "offline", false, 5_000, 4, 1},
			{"fake-real-100", "fake", true, 100, 10, 2},
		}
	}
	var largest *scaleRun
	for _, p := range plans {
		var path string
		var err error
		if p.real {
			path, err = realInput(b.cfg.Sample, b.work, p.records)
		} else {
			path, err = flatInput(b.work, p.records)
		}
		if err != nil {
			return res, err
		}
		r, err := b.scaleRun(ctx, p.name, p.provider, path, p.records, p.workers, p.concurrency)
		if err != nil {
			return res, err
		}
		res.Runs = append(res.Runs, *r)
		fmt.Fprintf(b.out, "  %s: %.1fs, coordinator overhead %.2fs (%.2f%%), coordinator RSS %s MB (%s private), worker RSS %s MB (%s private)\n",
			r.Name, r.WallS, r.Phases.OverheadS, 100*r.OverheadShare, mb(r.CoordRSSKB), mb(r.CoordAnonKB), mb(r.WorkerRSSKB), mb(r.WorkerAnonKB))
		if p.provider == "offline" && (largest == nil || r.Records > largest.Records) {
			largest = &res.Runs[len(res.Runs)-1]
		}
	}
	if largest != nil {
		m, err := b.mergeTiming(ctx, largest)
		if err != nil {
			return res, err
		}
		res.Merge = m
		s, err := b.splitTiming(ctx, largest)
		if err != nil {
			return res, err
		}
		res.Split = s
	}
	fmt.Fprintln(b.out)
	b.scaleTables(res)
	return res, nil
}

func (b *bench) scaleTables(res *scaleResult) {
	var rows [][]string
	for _, w := range res.WorkerStart {
		rows = append(rows, []string{w.Provider, itoa(w.Reps), f1(w.ReadyP50MS), f1(w.ReadyP90MS), f1(w.ExitP50MS), f1(w.ExitP90MS), mb(w.MaxRSSKB) + " / " + mb(w.MaxAnonKB)})
	}
	fmt.Fprintln(b.out, "Worker start, bin/worker run by hand on a one-record batch:")
	fmt.Fprintln(b.out)
	table(b.out, []string{"provider", "runs", "exec→\"batch started\" p50 ms", "p90 ms", "exec→exit p50 ms", "p90 ms", "peak RSS / private MB"}, rows)

	rows = nil
	for _, r := range res.Runs {
		p := r.Phases
		rows = append(rows, []string{r.Name, itoa(r.Records), fmt.Sprintf("%.0f", r.InputMB), fmt.Sprintf("%d×%d", r.Workers, r.Concurrency),
			f1(r.WallS), f2(p.StartupS), f2(p.SplitS), f2(p.FirstSpawnS), f1(p.WorkersS), f2(p.MergeS),
			f2(p.OverheadS), fmt.Sprintf("%.2f%%", 100*r.OverheadShare), f2(p.ToFirstRequestS), f2(p.ToFirstRecordS), f2(p.LastRecordToExitS), f1(r.CoordCPUS),
			f1(p.SpawnReadyMean), mb(r.CoordRSSKB) + " / " + mb(r.CoordAnonKB), mb(r.WorkerRSSKB) + " / " + mb(r.WorkerAnonKB), mb(r.SummaryWorkerRSSKB)})
	}
	fmt.Fprintln(b.out, "Whole runs (phases from summary.json's timestamps against the process's start and exit):")
	fmt.Fprintln(b.out)
	table(b.out, []string{"run", "records", "input MB", "workers×conc.", "wall s", "start-up s", "input check s", "→1st spawn s",
		"workers s", "merge+summary s", "overhead s", "overhead share", "→1st request s", "→1st record s", "last record→exit s", "coord. CPU s", "spawn→ready ms", "coord. peak RSS / private MB", "worker peak RSS / private MB", "summary.json worker max_rss MB"}, rows)
	for _, r := range res.Runs {
		if r.OverheadShareReal > 0 {
			fmt.Fprintf(b.out, "%s at a real API's ~%.0fs per request would take about %.0fs; the same %.2fs overhead is %.2f%% of that.\n\n",
				r.Name, r.RealLatencyS, float64(r.Records)*r.RealLatencyS/float64(r.Workers*r.Concurrency), r.Phases.OverheadS, 100*r.OverheadShareReal)
		}
		if r.FirstStreamMS != 0 {
			fmt.Fprintf(b.out, "%s with --stream -: the first result line reached stdout %.1f ms after the fake's first answer.\n\n", r.Name, r.FirstStreamMS)
		}
	}
	if s := res.Split; s != nil {
		fmt.Fprintf(b.out, "In-process timing of the split of %d records: input.Scan (check) %.2fs, writing the batch files %.2fs.\n\n", s.Records, s.ScanS, s.WriteS)
	}
	if m := res.Merge; m != nil {
		fmt.Fprintf(b.out, "`coordinator merge` of %d rows: %.2fs wall (best of %d), %.2fs CPU, peak RSS %s MB (%s MB private).\n\n", m.Records, m.WallS, m.Reps, m.CPUS, mb(m.MaxRSSKB), mb(m.MaxAnonKB))
	}
}

func (b *bench) scaleRun(ctx context.Context, name, provider, path string, records, workers, conc int) (*scaleRun, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	url := ""
	var f *fake
	args := []string{"--workers", itoa(workers), "--concurrency", itoa(conc)}
	if provider == "fake" {
		if f, err = startFake(fakeai.Config{Seed: 3, Latency: latencyModel}, false); err != nil {
			return nil, err
		}
		defer f.stop()
		url = f.URL()
		// The answers downstream as they land: the first streamed line against the first answer.
		args = append(args, "--stream", "-")
	}
	run, err := b.coordinator(ctx, "scale-"+name, path, url, 30*time.Minute, args...)
	if err != nil {
		return nil, err
	}
	var firstStreamMS float64
	if f != nil && len(run.Proc.Events) > 0 {
		var first time.Time
		for _, sm := range f.stats().samples {
			if end := sm.Start.Add(sm.Service); sm.Status == http.StatusOK && (first.IsZero() || end.Before(first)) {
				first = end
			}
		}
		if !first.IsZero() {
			firstStreamMS = ms(run.Proc.Started.Add(run.Proc.Events[0].At).Sub(first))
		}
	}
	r := &scaleRun{Name: name, Provider: provider, Records: records, Workers: workers, Concurrency: conc,
		InputMB: float64(st.Size()) / (1 << 20), WallS: run.Proc.WallS, Succeeded: run.Summary.Succeeded,
		Phases: run.Phases, CoordCPUS: run.Proc.SelfCPUS, WorkersCPUS: run.Proc.ChildrenCPUS,
		CoordRSSKB: run.Proc.PeakRSSKB, WorkerRSSKB: run.Proc.ChildPeakRSSKB,
		CoordAnonKB: run.Proc.PeakAnonKB, WorkerAnonKB: run.Proc.ChildPeakAnonKB,
		SummaryCoordRSSKB: run.Summary.CoordinatorMaxRSSKB, FirstStreamMS: firstStreamMS, Run: run}
	r.OverheadShare = r.Phases.OverheadS / r.WallS
	r.CoordCPUShare = r.CoordCPUS / r.WallS
	r.OtherCPUS = max(0, run.Proc.MachineBusyS-r.CoordCPUS-r.WorkersCPUS)
	for _, w := range run.Summary.Workers {
		r.SummaryWorkerRSSKB = max(r.SummaryWorkerRSSKB, w.MaxRSSKB)
	}
	if provider == "fake" {
		r.RealLatencyS = realLatencyS
		r.OverheadShareReal = r.Phases.OverheadS / (float64(records) * realLatencyS / float64(workers*conc))
	}
	if r.Succeeded != int64(records) {
		return r, fmt.Errorf("%s: %d of %d records succeeded", name, r.Succeeded, records)
	}
	return r, nil
}

// workerStart runs bin/worker by hand on a one-record batch reps times.
func (b *bench) workerStart(ctx context.Context, provider string, reps int) (*workerStart, error) {
	var url string
	var e []string
	var path string
	var err error
	if provider == "fake" {
		f, ferr := startFake(fakeai.Config{Seed: 1}, false) // no latency: the start is what counts
		if ferr != nil {
			return nil, ferr
		}
		defer f.stop()
		url = f.URL()
		e = env("OPENAI_API_KEY=" + fakeKey)
		path, err = realInput(b.cfg.Sample, b.work, 1)
	} else {
		e = env()
		path, err = flatInput(b.work, 1)
	}
	if err != nil {
		return nil, err
	}
	run, err := b.coordinator(ctx, "worker-start-"+provider, path, url, time.Minute, "--workers", "1")
	if err != nil {
		return nil, err
	}
	var ready, exit []float64
	ws := &workerStart{Provider: provider, Reps: reps}
	for i := 0; i < reps; i++ {
		w0 := rundir.New(run.Out).Worker(0)
		for _, o := range []string{w0.Results, w0.Failures, w0.Log, w0.Attempts} {
			_ = os.Remove(o)
		}
		p, err := runProc(ctx, filepath.Join(b.bin, "worker"), []string{"--batch", w0.Batch, "--events"}, e, time.Minute)
		if err != nil {
			return nil, err
		}
		if p.ExitCode != 0 {
			return nil, fmt.Errorf("worker by hand exited %d:\n%s", p.ExitCode, tail(p, 10))
		}
		for _, l := range p.Events {
			if m, err := wire.Decode([]byte(l.Text)); err == nil && m.Type == wire.Start {
				ready = append(ready, ms(l.At))
				break
			}
		}
		exit = append(exit, ms(p.Wall))
		ws.MaxRSSKB = max(ws.MaxRSSKB, p.PeakRSSKB)
		ws.MaxAnonKB = max(ws.MaxAnonKB, p.PeakAnonKB)
	}
	r, x := stats(ready), stats(exit)
	ws.ReadyP50MS, ws.ReadyP90MS, ws.ExitP50MS, ws.ExitP90MS = r.p50, r.p90, x.p50, x.p90
	return ws, nil
}

// mergeTiming runs `coordinator merge` on a finished run.
func (b *bench) mergeTiming(ctx context.Context, r *scaleRun) (*mergeTiming, error) {
	m := &mergeTiming{Records: r.Records, Reps: 1}
	for i := 0; i < m.Reps; i++ {
		p, err := runProc(ctx, filepath.Join(b.bin, "coordinator"), []string{"merge", "--out", r.Run.Out}, env(), 10*time.Minute)
		if err != nil {
			return nil, err
		}
		if p.ExitCode != 0 {
			return nil, fmt.Errorf("coordinator merge exited %d:\n%s", p.ExitCode, tail(p, 10))
		}
		if i == 0 || p.WallS < m.WallS {
			m.WallS, m.CPUS = p.WallS, p.SelfCPUS
		}
		m.MaxRSSKB = max(m.MaxRSSKB, p.PeakRSSKB)
		m.MaxAnonKB = max(m.MaxAnonKB, p.PeakAnonKB)
	}
	return m, nil
}

// splitTiming times the coordinator's check pass and batch writing in process.
func (b *bench) splitTiming(ctx context.Context, r *scaleRun) (*splitTiming, error) {
	path := r.Run.Input
	s := &splitTiming{Records: r.Records}
	t0 := time.Now()
	st, err := input.Scan(ctx, path, input.Options{})
	if err != nil {
		return nil, err
	}
	s.ScanS = time.Since(t0).Seconds()
	dir := filepath.Join(b.work, "split-timing")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	t0 = time.Now()
	in, err := input.Open(path, input.Options{})
	if err != nil {
		return nil, err
	}
	defer in.Close()
	for _, rg := range batch.Equal(st.Records, r.Workers) {
		w, err := batch.Create(rundir.New(dir).Batch(rg.Number))
		if err != nil {
			return nil, err
		}
		for i := int64(0); i < rg.Count; i++ {
			rec, err := in.Next()
			if err != nil {
				w.Abort()
				return nil, err
			}
			if err := w.Add(rec.ID, rec.Data); err != nil {
				w.Abort()
				return nil, err
			}
		}
		if err := w.Commit(); err != nil {
			return nil, err
		}
	}
	s.WriteS = time.Since(t0).Seconds()
	return s, nil
}
