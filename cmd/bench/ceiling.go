package main

import (
	"context"
	"fmt"
	"runtime"
	"sort"
	"strconv"
	"time"

	"github.com/trialcat/trialcat/internal/fakeai"
)

// ceilingRun is one run of the ceiling scenario.
type ceilingRun struct {
	Mode        string  `json:"mode"`
	Workers     int     `json:"workers"`
	Concurrency int     `json:"concurrency"`
	Records     int     `json:"records"`
	Requests    int     `json:"requests"`
	WallS       float64 `json:"wall_s"`
	// SpanS is the server's first to last accepted request: the run without its start and end.
	SpanS       float64 `json:"span_s"`
	CoordCPUS   float64 `json:"coordinator_cpu_s"`
	WorkersCPUS float64 `json:"workers_cpu_s"`
	FakeCPUS    float64 `json:"fake_cpu_s"`
	// Round is the run's round: every configuration runs once a round, in turn, so the
	// machine's drift falls on all of them alike.
	Round int `json:"round"`
}

// toolMS is the coordinator's and the workers' CPU per record, in milliseconds.
func (r ceilingRun) toolMS() float64 {
	return (r.CoordCPUS + r.WorkersCPUS) * 1000 / float64(r.Records)
}

// ceiling measures the tool's own CPU per record and its records a second against a server that
// answers at once, with the real records: the coordinator's and the workers' CPU from /proc, the
// fake's (in this process) apart.
func (b *bench) ceiling(ctx context.Context) (any, error) {
	n := 6000
	if b.cfg.Quick {
		n = 600
	}
	input, err := realInput(b.cfg.Sample, b.work, n)
	if err != nil {
		return nil, err
	}
	rounds := 3
	if b.cfg.Quick {
		rounds = 1
	}
	configs := []struct {
		mode          string
		workers, conc int
	}{{"one-shot", 4, 8}, {"one-shot", 8, 8}, {"one-shot", 20, 8}, {"agent", 8, 8}}
	var runs []ceilingRun
	for round := range rounds {
		for _, c := range configs {
			f, err := startFake(fakeai.Config{Seed: 13}, false)
			if err != nil {
				return nil, err
			}
			args := []string{"--workers", strconv.Itoa(c.workers), "--concurrency", strconv.Itoa(c.conc), "--batches", "auto", "--log-level", "info"}
			if c.mode == "agent" {
				args = append(args, "--agent", "--transcripts", "off")
			}
			cpu0 := selfCPU()
			run, err := b.coordinator(ctx, fmt.Sprintf("ceiling-%s-%d-%d", c.mode, c.workers, round), input, f.URL(), 15*time.Minute, args...)
			fakeCPU := selfCPU() - cpu0
			srv := f.stats()
			f.stop()
			if err != nil {
				return nil, err
			}
			if run.Summary.Succeeded != int64(n) {
				return nil, fmt.Errorf("ceiling %s %d workers: %d of %d records answered", c.mode, c.workers, run.Summary.Succeeded, n)
			}
			runs = append(runs, ceilingRun{Mode: c.mode, Workers: c.workers, Concurrency: c.conc, Records: n, Requests: srv.Requests,
				WallS: run.Proc.WallS, SpanS: srv.LastAccepted.Sub(srv.FirstAccepted).Seconds(),
				CoordCPUS: run.Proc.SelfCPUS, WorkersCPUS: run.Proc.ChildrenCPUS, FakeCPUS: fakeCPU, Round: round})
		}
	}
	fmt.Fprintf(b.out, "## CPU ceiling: %d real records against a server that answers at once (%d cores, %d rounds: the median run of each)\n\n",
		n, runtime.NumCPU(), rounds)
	var rows [][]string
	for _, c := range configs {
		var same []ceilingRun
		for _, r := range runs {
			if r.Mode == c.mode && r.Workers == c.workers && r.Concurrency == c.conc {
				same = append(same, r)
			}
		}
		sort.Slice(same, func(i, j int) bool { return same[i].toolMS() < same[j].toolMS() })
		r, k := same[len(same)/2], float64(n)
		rows = append(rows, []string{r.Mode, fmt.Sprintf("%d x %d", r.Workers, r.Concurrency), itoa(r.Requests), f2(r.WallS), f1(k / r.WallS), f1(k / r.SpanS),
			f2(r.CoordCPUS * 1000 / k), f2(r.WorkersCPUS * 1000 / k), f2(r.toolMS()), f2(same[0].toolMS()) + "-" + f2(same[len(same)-1].toolMS()),
			f2(r.FakeCPUS * 1000 / k)})
	}
	table(b.out, []string{"mode", "workers x concurrency", "requests", "wall s", "records/s (wall)", "records/s (requests' span)",
		"coordinator CPU ms/record", "workers CPU ms/record", "tool CPU ms/record", "tool CPU, all rounds", "fake CPU ms/record"}, rows)
	fmt.Fprintln(b.out)
	return runs, nil
}
