package main

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/trialcat/trialcat/internal/fakeai"
)

// latencyModel is the fake's latency in the latency-bound and overhead runs: 150ms plus 20µs
// per prompt token (fakeai counts len(prompt)/4), times a lognormal jitter with sigma 0.6,
// whose mean is e^0.18 = 1.2 and whose p99 is 4x the median.
var latencyModel = fakeai.LatencyModel{Base: 150 * time.Millisecond, PerPromptToken: 20 * time.Microsecond, Sigma: 0.6}

// perRecord is m with its jitter drawn per record and request (fakeai.LatencyModel.PerRecord).
func perRecord(m fakeai.LatencyModel) fakeai.LatencyModel {
	m.PerRecord = true
	return m
}

// slowModel is latencyModel four times slower (600ms + 80µs per prompt token, mean about
// 0.95s): light enough on CPU that a 2-core machine measures the scheduling rather than its own
// CPU limit, with enough records per worker to stay within a minute a run.
var slowModel = fakeai.LatencyModel{Base: 600 * time.Millisecond, PerPromptToken: 80 * time.Microsecond, Sigma: 0.6}

// shortModel is the short-run series' heavy tail: 80ms + 60µs per prompt token, sigma 0.8.
var shortModel = fakeai.LatencyModel{Base: 80 * time.Millisecond, PerPromptToken: 60 * time.Microsecond, Sigma: 0.8}

// designEfficiency is the parallel efficiency the design document predicted for a static split.
var designEfficiency = map[int]float64{5: 0.98, 10: 0.93, 20: 0.81}

// latencyResult is one latency-bound run.
type latencyResult struct {
	Model   string `json:"latency_model"` // fast (latencyModel) or slow (slowModel)
	Workers int    `json:"workers"`
	Conc    int    `json:"concurrency"`
	// Mode is static (one batch per worker), auto (--batches auto) or hedge (--batches auto
	// --hedge 5).
	Mode    string  `json:"mode"`
	Records int     `json:"records"`
	Batches int     `json:"batches"`
	WallS   float64 `json:"wall_s"`
	// ServiceSumS is the sum of the fake's service times (the drawn latency of every answer,
	// measured around the handler); IdealWallS = ServiceSumS / (Workers × Conc).
	ServiceSumS float64 `json:"service_sum_s"`
	IdealWallS  float64 `json:"ideal_wall_s"`
	// Efficiency is IdealWallS / WallS; Speedup is ServiceSumS / WallS (the gain over one
	// sequential worker with no overhead).
	Efficiency float64 `json:"efficiency"`
	Speedup    float64 `json:"speedup"`
	// ClientSumS is summary.json's request_seconds (Σ latency_ms of final_results.csv, the
	// latency the workers saw); ClientOverheadMS its excess over the server's time per request.
	ClientSumS       float64 `json:"client_sum_s"`
	ClientOverheadMS float64 `json:"client_overhead_per_request_ms"`
	// Balance, for a static split, is the mean worker's Σ latency over the largest one's: the
	// efficiency a static split could reach with zero overhead.
	Balance float64 `json:"static_balance"`
	// GreedyBound is the efficiency a perfect record-level scheduler with no overhead at all
	// would reach with the same latencies (each record, in input order, to the first idle
	// worker): what is lost to the heavy tail alone when a run has few records per worker.
	GreedyBound float64 `json:"greedy_bound"`
	// TailS is the workers' span minus the ideal wall: imbalance, spawns, per-request costs.
	TailS  float64 `json:"workers_span_minus_ideal_s"`
	Design float64 `json:"design_efficiency,omitempty"`
	// Hedged and HedgeWins are summary.json's; ExtraRequests the requests at the server beyond
	// one per record. A hedge run's IdealWallS, Efficiency and GreedyBound are its auto twin's
	// (same records, same first-request latencies: PerRecord jitter), so they compare exactly.
	Hedged        int64 `json:"hedged,omitempty"`
	HedgeWins     int64 `json:"hedge_wins,omitempty"`
	ExtraRequests int   `json:"extra_requests,omitempty"`
	// CPUShare is the CPU used by the coordinator, its workers and this process (the fake)
	// over wall × cores: near 1, the machine, not the API, was the limit.
	CoordCPUS   float64 `json:"coordinator_cpu_s"`
	WorkersCPUS float64 `json:"workers_cpu_s"`
	FakeCPUS    float64 `json:"fake_cpu_s"`
	CPUShare    float64 `json:"cpu_share"`
	// OtherCPUS is CPU the machine spent on other processes during the run (other users'
	// builds and tests): a noisy neighbour makes the run slower than this program alone.
	OtherCPUS   float64     `json:"other_cpu_s"`
	WorkerRSSKB int64       `json:"worker_peak_rss_kb"`
	Succeeded   int64       `json:"succeeded"`
	Phases      phases      `json:"phases"`
	Server      serverStats `json:"server"`
	Run         *coordRun   `json:"run"`
}

// latencyPlan is one series of latency-bound runs.
type latencyPlan struct {
	name    string
	model   fakeai.LatencyModel
	workers []int
	records func(w int) int
	// conc is the --concurrency for w workers (nil: 1); staticOnly skips --batches auto.
	conc       func(w int) int
	staticOnly bool
	// hedge runs auto and hedge (instead of static and auto), on PerRecord latencies.
	hedge bool
}

// hedgePercent is the --hedge of the hedge series.
const hedgePercent = 5

func (b *bench) latencyPlans() ([]latencyPlan, error) {
	ws, err := b.latencyWorkers()
	if err != nil {
		return nil, err
	}
	if b.cfg.Quick {
		return []latencyPlan{{"fast", latencyModel, ws, func(w int) int { return 10 * w }, nil, false, false}}, nil
	}
	all := []latencyPlan{
		// About 24s of ideal work per worker from 5 to 20 workers (12s at 1), 2500 records
		// (12s each) at 50.
		{"fast", latencyModel, ws, func(w int) int {
			if w == 1 {
				return 50
			}
			return min(100*w, 2500)
		}, nil, false, false},
		// 60 records (about 57s) per worker at 20 workers, 40 (38s) at 50.
		{"slow", slowModel, []int{20, 50}, func(w int) int { return map[int]int{20: 1200, 50: 2000}[w] }, nil, false, false},
		// 40 request slots shaped as processes × concurrency, 2000 records (50 a slot).
		{"slots", latencyModel, []int{40, 10, 4, 2}, func(int) int { return 2000 }, func(w int) int { return 40 / w }, true, false},
		// The slow series again, each run twice on the same first-request latencies: --batches
		// auto, then with --hedge 5.
		{"hedge", perRecord(slowModel), []int{20, 50}, func(w int) int { return map[int]int{20: 1200, 50: 2000}[w] }, nil, false, true},
		// A short run, what a group does while it tunes prompts: 409 records (41 and 20 a
		// slot) on a heavy tail, --batches auto then with --hedge 5.
		{"short", perRecord(shortModel), []int{10, 20}, func(int) int { return 409 }, nil, false, true},
	}
	var plans []latencyPlan
	for _, p := range all {
		if slices.Contains(strings.Split(b.cfg.Series, ","), p.name) || b.cfg.Series == "all" {
			plans = append(plans, p)
		}
	}
	if len(plans) == 0 {
		return nil, fmt.Errorf("-series %q: want fast, slow, slots, hedge, short, a comma-separated list of them, or all", b.cfg.Series)
	}
	return plans, nil
}

func (b *bench) latencyWorkers() ([]int, error) {
	spec := b.cfg.Workers
	if spec == "" {
		spec = "1,5,10,20,50"
		if b.cfg.Quick {
			spec = "1,5"
		}
	}
	var ws []int
	for _, f := range strings.Split(spec, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-workers %q: want comma-separated counts", spec)
		}
		ws = append(ws, n)
	}
	return ws, nil
}

func (b *bench) latency(ctx context.Context) (any, error) {
	plans, err := b.latencyPlans()
	if err != nil {
		return nil, err
	}
	var all []latencyResult
	for _, p := range plans {
		fmt.Fprintf(b.out, "## Latency-bound (%s): fake latency (%s + %s/prompt token) × lognormal(σ=%.1f)\n\n",
			p.name, p.model.Base, p.model.PerPromptToken, p.model.Sigma)
		var series []latencyResult
		for _, w := range p.workers {
			modes := []string{"static", "auto"}
			if w == 1 || p.staticOnly {
				modes = modes[:1] // one worker: the split cannot matter
			}
			if p.hedge {
				modes = []string{"auto", "hedge"}
			}
			for _, mode := range modes {
				r, err := b.latencyRun(ctx, p, w, mode)
				if r != nil && mode == "hedge" && len(series) > 0 {
					twin := series[len(series)-1]
					r.IdealWallS, r.GreedyBound = twin.IdealWallS, twin.GreedyBound
					r.Efficiency = r.IdealWallS / r.WallS
				}
				if r != nil {
					series = append(series, *r)
					fmt.Fprintf(b.out, "  workers %d×%d %s: %d records in %.1fs, efficiency %.1f%% (%d batches, CPU %.0f%%)\n",
						w, r.Conc, mode, r.Records, r.WallS, 100*r.Efficiency, r.Batches, 100*r.CPUShare)
				}
				if err != nil {
					return append(all, series...), err
				}
			}
		}
		fmt.Fprintln(b.out)
		b.latencyTable(series)
		all = append(all, series...)
	}
	return all, nil
}

func (b *bench) latencyTable(series []latencyResult) {
	var rows [][]string
	for _, r := range series {
		design := ""
		if r.Design > 0 && r.Mode == "static" {
			design = pct(r.Design)
		}
		bal := ""
		if r.Mode == "static" {
			bal = pct(r.Balance)
		}
		shape := itoa(r.Workers)
		if r.Conc > 1 {
			shape = fmt.Sprintf("%d×%d", r.Workers, r.Conc)
		}
		rows = append(rows, []string{shape, r.Mode, itoa(r.Records), itoa(r.Batches),
			f1(r.WallS), f1(r.IdealWallS), f1(r.Speedup) + "x", pct(r.Efficiency), design, bal, pct(r.GreedyBound),
			f2(r.Phases.OverheadS), fmt.Sprintf("%.0f", r.Phases.SpawnReadyMean), f1(r.ClientOverheadMS),
			fmt.Sprintf("%.0f%%", 100*r.CPUShare), f1(r.OtherCPUS)})
	}
	table(b.out, []string{"workers", "split", "records", "batches", "wall s", "ideal s", "speedup", "efficiency",
		"design", "static balance", "greedy bound", "coord. overhead s", "spawn→ready ms", "client ms/req", "CPU busy", "others' CPU s"}, rows)
	rows = nil
	for _, r := range series {
		if r.Mode != "hedge" {
			continue
		}
		rows = append(rows, []string{itoa(r.Workers), itoa(r.Records), f1(r.WallS), f1(r.IdealWallS), pct(r.Efficiency), pct(r.GreedyBound),
			itoa(int(r.Hedged)), itoa(int(r.HedgeWins)), fmt.Sprintf("%d (%.1f%%)", r.ExtraRequests, 100*float64(r.ExtraRequests)/float64(r.Records))})
	}
	if len(rows) > 0 {
		fmt.Fprintf(b.out, "\nWith --hedge %d (ideal and greedy bound of the auto run above it: the same first-request latencies):\n\n", hedgePercent)
		table(b.out, []string{"workers", "records", "wall s", "ideal s (no hedge)", "efficiency", "greedy bound without hedging", "hedged", "copy won", "extra requests"}, rows)
	}
}

func (b *bench) latencyRun(ctx context.Context, p latencyPlan, w int, mode string) (*latencyResult, error) {
	n := p.records(w)
	c := 1
	if p.conc != nil {
		c = p.conc(w)
	}
	input, err := realInput(b.cfg.Sample, b.work, n)
	if err != nil {
		return nil, err
	}
	f, err := startFake(fakeai.Config{Seed: int64(w), Latency: p.model}, false)
	if err != nil {
		return nil, err
	}
	defer f.stop()
	args := []string{"--workers", itoa(w), "--concurrency", itoa(c)}
	switch mode {
	case "auto":
		args = append(args, "--batches", "auto")
	case "hedge":
		args = append(args, "--batches", "auto", "--hedge", itoa(hedgePercent))
	}
	cpu0 := selfCPU()
	run, err := b.coordinator(ctx, fmt.Sprintf("latency-%s-w%dc%d-%s", p.name, w, c, mode), input, f.URL(), 10*time.Minute, args...)
	if err != nil {
		return nil, err
	}
	fakeCPU := selfCPU() - cpu0
	rows, err := readResults(run.Out)
	if err != nil {
		return nil, err
	}
	if len(rows) != n {
		return nil, fmt.Errorf("latency %s, %d workers, %s: final_results.csv holds %d records of %d", p.name, w, mode, len(rows), n)
	}
	srv := f.stats()
	r := &latencyResult{Model: p.name, Workers: w, Conc: c, Mode: mode, Records: n, Batches: run.Batches, WallS: run.Proc.WallS,
		ServiceSumS: srv.ServiceSumS, ClientSumS: run.Summary.RequestSeconds,
		Succeeded: run.Summary.Succeeded, Phases: run.Phases, Server: srv, Run: run,
		CoordCPUS: run.Proc.SelfCPUS, WorkersCPUS: run.Proc.ChildrenCPUS, FakeCPUS: fakeCPU,
		WorkerRSSKB: run.Proc.ChildPeakRSSKB,
		Hedged:      run.Summary.Hedged, HedgeWins: run.Summary.HedgeWins, ExtraRequests: srv.Requests - n}
	if c == 1 {
		r.Design = designEfficiency[w]
	}
	r.CPUShare = (r.CoordCPUS + r.WorkersCPUS + r.FakeCPUS) / (r.WallS * float64(runtime.NumCPU()))
	r.OtherCPUS = max(0, run.Proc.MachineBusyS-r.CoordCPUS-r.WorkersCPUS-r.FakeCPUS)
	r.IdealWallS = r.ServiceSumS / float64(w*c)
	r.Efficiency = r.IdealWallS / r.WallS
	r.Speedup = r.ServiceSumS / r.WallS
	if len(rows) > 0 {
		r.ClientOverheadMS = (r.ClientSumS - r.ServiceSumS) * 1000 / float64(len(rows))
	}
	r.TailS = r.Phases.WorkersS - r.IdealWallS
	r.GreedyBound = greedyBound(rows, w*c)
	if mode == "static" {
		per := map[int]float64{}
		var total float64
		for _, row := range rows {
			per[row.Worker] += row.LatencyMS
			total += row.LatencyMS
		}
		var most float64
		for _, v := range per {
			most = max(most, v)
		}
		if most > 0 {
			r.Balance = total / float64(w) / most
		}
	}
	if r.ClientOverheadMS > 100 {
		fmt.Fprintf(b.out, "  warning: the workers saw %.0f ms a request more than the fake spent on it: a client-side stall; rerun with -keep -work DIR and read %s/worker_*_log.txt\n",
			r.ClientOverheadMS, run.Out)
	}
	if r.Succeeded != int64(n) {
		return r, fmt.Errorf("workers %d %s: %d of %d records succeeded", w, mode, r.Succeeded, n)
	}
	return r, nil
}

// greedyBound simulates list scheduling of the rows' latencies, in input order, on w workers
// with no overhead, and returns Σ latency / w over its makespan.
func greedyBound(rows []resultRow, w int) float64 {
	free := make([]float64, w)
	var total, makespan float64
	for _, r := range rows {
		i := 0
		for j := range free {
			if free[j] < free[i] {
				i = j
			}
		}
		free[i] += r.LatencyMS
		total += r.LatencyMS
		makespan = max(makespan, free[i])
	}
	if makespan == 0 {
		return 0
	}
	return total / float64(w) / makespan
}
