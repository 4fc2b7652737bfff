package tally

import (
	"reflect"
	"testing"
	"time"

	"github.com/trialcat/trialcat/internal/testclock"
	"github.com/trialcat/trialcat/internal/wire"
)

func TestCountersFromEvents(t *testing.T) {
	rec := func(batch int, ok bool) wire.Msg {
		return wire.Msg{Type: wire.Record, Worker: batch, OK: ok, InputTokens: 100, CachedTokens: 10, OutputTokens: 20, CostUSD: 0.5}
	}
	tests := []struct {
		name    string
		feed    func(d *Tally)
		want    Snapshot
		workers []WorkerSnapshot
	}{
		{
			name: "fresh run",
			feed: func(d *Tally) {
				d.WorkerStarted(1, 3)
				d.Event(wire.Msg{Type: wire.Start, Worker: 1, Pending: 3})
				d.Event(rec(1, true))
				d.Event(rec(1, false))
				d.Event(wire.Msg{Type: wire.Retry, Worker: 1, Status: 429})
				d.Event(wire.Msg{Type: wire.Retry, Worker: 1, Status: 500})
				d.Event(wire.Msg{Type: wire.Retry, Worker: 1})
			},
			want: Snapshot{Total: 10, Done: 2, Succeeded: 1, Failed: 1, Retries: 3, RateLimited: 1,
				InputTokens: 200, CachedTokens: 20, OutputTokens: 40, CostUSD: 1, PassCostUSD: 1, Running: 1},
			workers: []WorkerSnapshot{{Batch: 1, Records: 3, Done: 2, Running: true, Retries: 3}},
		},
		{
			name: "resume counts what an earlier run did as done but not in the rate",
			feed: func(d *Tally) {
				d.WorkerStarted(2, 5)
				d.Event(wire.Msg{Type: wire.Start, Worker: 2, Done: 4, Pending: 1})
				d.Event(rec(2, true))
				d.WorkerEnded(2, "exit status 0", 1)
			},
			want: Snapshot{Total: 10, Done: 5, Skipped: 4, Succeeded: 1,
				InputTokens: 100, CachedTokens: 10, OutputTokens: 20, CostUSD: 0.5, PassCostUSD: 0.5},
			workers: []WorkerSnapshot{{Batch: 2, Records: 5, Done: 5, Exit: "exit status 0", ExitCode: 1}},
		},
		{
			name: "a restarted worker's start does not count its predecessor's records twice",
			feed: func(d *Tally) {
				d.WorkerStarted(1, 4)
				d.Event(wire.Msg{Type: wire.Start, Worker: 1, Done: 1, Pending: 3})
				d.Event(rec(1, true))
				d.Restart(1)
				d.WorkerStarted(1, 4)
				d.Event(wire.Msg{Type: wire.Start, Worker: 1, Done: 2, Pending: 2})
				d.Event(rec(1, true))
			},
			want: Snapshot{Total: 10, Done: 3, Skipped: 1, Succeeded: 2, Restarts: 1,
				InputTokens: 200, CachedTokens: 20, OutputTokens: 40, CostUSD: 1, PassCostUSD: 1, Running: 1},
			workers: []WorkerSnapshot{{Batch: 1, Records: 4, Done: 3, Restarts: 1, Running: true}},
		},
		{
			name: "rows a crashed worker wrote but never reported count once it restarts",
			feed: func(d *Tally) {
				d.WorkerStarted(1, 4)
				d.Event(wire.Msg{Type: wire.Start, Worker: 1, Pending: 4})
				d.Event(rec(1, true))
				d.Restart(1)
				d.Event(wire.Msg{Type: wire.Start, Worker: 1, Done: 3, Pending: 1})
			},
			want: Snapshot{Total: 10, Done: 3, Succeeded: 1, Restarts: 1,
				InputTokens: 100, CachedTokens: 10, OutputTokens: 20, CostUSD: 0.5, PassCostUSD: 0.5, Running: 1},
			workers: []WorkerSnapshot{{Batch: 1, Records: 4, Done: 3, Restarts: 1, Running: true}},
		},
		{
			name: "cost of an earlier run",
			feed: func(d *Tally) {
				d.AddCost(2)
				d.Event(rec(1, true))
			},
			want:    Snapshot{Total: 10, Done: 1, Succeeded: 1, InputTokens: 100, CachedTokens: 10, OutputTokens: 20, CostUSD: 2.5, PassCostUSD: 0.5},
			workers: []WorkerSnapshot{{Batch: 1, Done: 1}},
		},
		{
			name: "unknown price and a refused run",
			feed: func(d *Tally) {
				d.Event(wire.Msg{Type: wire.Record, Worker: 1, OK: true, InputTokens: 7, CostUnknown: true})
				d.Event(wire.Msg{Type: wire.Fatal, Worker: 1, Status: 401})
				d.Event(wire.Msg{Type: wire.End, Worker: 1, Done: 1})
			},
			want:    Snapshot{Total: 10, Done: 1, Succeeded: 1, InputTokens: 7, CostUnknown: true, Fatal: true},
			workers: []WorkerSnapshot{{Batch: 1, Done: 1}},
		},
		{
			name: "workers are listed in batch order",
			feed: func(d *Tally) {
				for _, n := range []int{3, 1, 2} {
					d.WorkerStarted(n, 1)
				}
				d.WorkerEnded(2, "exit status 1", 1)
			},
			want: Snapshot{Total: 10, Running: 2},
			workers: []WorkerSnapshot{{Batch: 1, Records: 1, Running: true}, {Batch: 2, Records: 1, Exit: "exit status 1", ExitCode: 1},
				{Batch: 3, Records: 1, Running: true}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := New(newClock().Now)
			d.Start(10)
			tt.feed(d)
			got := d.Snapshot()
			// Time-dependent fields are checked in TestRateAndETA.
			for i := range got.Workers {
				// Timings and process counts are checked in TestProcessTimings.
				got.Workers[i].Rate, got.Workers[i].Seconds, got.Workers[i].Processes = 0, 0, 0
				got.Workers[i].ReadyMS, got.Workers[i].ExitSeenMS = 0, 0
			}
			workers := got.Workers
			got.Workers, got.Rate, got.ETA, got.ETAKnown, got.Elapsed = nil, 0, 0, false, 0
			got.FirstWorkerAt, got.LastExitAt = time.Time{}, time.Time{}
			if got.Succeeded+got.Failed > 0 && (got.FirstRecordAt.IsZero() || got.LastRecordAt.Before(got.FirstRecordAt)) {
				t.Errorf("records were done but FirstRecordAt %v, LastRecordAt %v", got.FirstRecordAt, got.LastRecordAt)
			}
			got.FirstRecordAt, got.LastRecordAt = time.Time{}, time.Time{}
			got.RetriesByClass = nil // checked in TestPassTotalsLeaveEarlierPassesOut
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("snapshot\n got %+v\nwant %+v", got, tt.want)
			}
			if len(workers) != len(tt.workers) {
				t.Fatalf("workers\n got %+v\nwant %+v", workers, tt.workers)
			}
			for i := range workers {
				if workers[i] != tt.workers[i] {
					t.Errorf("worker %d\n got %+v\nwant %+v", i, workers[i], tt.workers[i])
				}
			}
		})
	}
}

func TestRateAndETA(t *testing.T) {
	tests := []struct {
		name     string
		skipped  int64
		done     int64 // records done since Start
		elapsed  time.Duration
		rate     float64
		eta      time.Duration
		etaKnown bool
	}{
		{name: "nothing done yet", elapsed: time.Minute},
		{name: "no time passed", done: 5},
		{name: "steady", done: 60, elapsed: 2 * time.Minute, rate: 30, eta: 280 * time.Second, etaKnown: true},
		{name: "skipped records are done but not part of the rate", skipped: 100, done: 30, elapsed: time.Minute,
			rate: 30, eta: 140 * time.Second, etaKnown: true},
		{name: "slow", done: 1, elapsed: time.Hour, rate: 1.0 / 60, eta: 199 * time.Hour, etaKnown: true},
		{name: "all done", skipped: 150, done: 50, elapsed: time.Minute, rate: 50, etaKnown: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			d := New(clk.Now)
			d.Start(200)
			d.Event(wire.Msg{Type: wire.Start, Worker: 1, Done: tt.skipped, Pending: 200 - tt.skipped})
			for range tt.done {
				d.Event(wire.Msg{Type: wire.Record, Worker: 1, OK: true})
			}
			clk.Add(tt.elapsed)
			s := d.Snapshot()
			if s.Done != tt.skipped+tt.done || s.Elapsed != tt.elapsed {
				t.Fatalf("done %d elapsed %s, want %d and %s", s.Done, s.Elapsed, tt.skipped+tt.done, tt.elapsed)
			}
			if diff := s.Rate - tt.rate; diff > 1e-9 || diff < -1e-9 {
				t.Errorf("rate %v, want %v", s.Rate, tt.rate)
			}
			if s.ETAKnown != tt.etaKnown || s.ETA.Round(time.Second) != tt.eta {
				t.Errorf("eta %s known %v, want %s known %v", s.ETA, s.ETAKnown, tt.eta, tt.etaKnown)
			}
		})
	}
}

func TestWorkerRateIsOfItsCurrentProcess(t *testing.T) {
	clk := newClock()
	d := New(clk.Now)
	d.Start(100)
	d.WorkerStarted(4, 50)
	for range 10 {
		d.Event(wire.Msg{Type: wire.Record, Worker: 4, OK: true})
	}
	clk.Add(2 * time.Minute)
	if got := d.Snapshot().Workers[0].Rate; got != 5 {
		t.Fatalf("rate of the first process %v, want 5 per minute", got)
	}
	d.Restart(4)
	d.WorkerStarted(4, 50)
	clk.Add(time.Minute)
	d.Event(wire.Msg{Type: wire.Record, Worker: 4, OK: true})
	w := d.Snapshot().Workers[0]
	if w.Rate != 1 || w.Done != 11 || w.Restarts != 1 {
		t.Fatalf("after a restart: %+v, want rate 1, done 11, restarts 1", w)
	}
}

func TestProcessTimings(t *testing.T) {
	clk := newClock()
	tl := New(clk.Now)
	tl.Start(10)
	t0 := clk.Now()
	tl.WorkerStarted(1, 5)
	clk.Add(30 * time.Millisecond)
	tl.Event(wire.Msg{Type: wire.Start, Worker: 1, Pending: 5})
	clk.Add(time.Second)
	tl.Event(wire.Msg{Type: wire.End, Worker: 1, MaxRSSKB: 20_000})
	clk.Add(4 * time.Millisecond)
	tl.WorkerEnded(1, "signal: killed", -1) // a crash right after its end event
	tl.Restart(1)
	tl.WorkerStarted(1, 5)
	clk.Add(50 * time.Millisecond)
	tl.Event(wire.Msg{Type: wire.Start, Worker: 1, Done: 3, Pending: 2})
	tl.Event(wire.Msg{Type: wire.End, Worker: 1, MaxRSSKB: 18_000})
	clk.Add(2 * time.Millisecond)
	tl.WorkerEnded(1, "exit status 0", 0)
	end := clk.Now()

	w, ok := tl.Worker(1)
	if !ok {
		t.Fatal("batch 1 unknown")
	}
	if w.Processes != 2 || w.ReadyMS != 50 || w.ExitSeenMS != 2 || w.MaxRSSKB != 20_000 || w.ExitCode != 0 {
		t.Errorf("worker %+v; want 2 processes, ready 50 ms and exit seen 2 ms (the last process), peak 20000 kB", w)
	}
	if want := end.Sub(t0).Seconds(); w.Seconds != want {
		t.Errorf("seconds %v; want %v, first start to last end", w.Seconds, want)
	}
	s := tl.Snapshot()
	if !s.FirstWorkerAt.Equal(t0) || !s.LastExitAt.Equal(end) {
		t.Errorf("first worker %s, last exit %s; want %s and %s", s.FirstWorkerAt, s.LastExitAt, t0, end)
	}
}

func TestPassTotalsLeaveEarlierPassesOut(t *testing.T) {
	tl := New(newClock().Now)
	tl.Start(10)
	tl.AddCost(3) // spent by an earlier pass
	tl.Event(wire.Msg{Type: wire.Record, Worker: 0, OK: true, CostUSD: 0.25, LatencyMS: 1500})
	tl.Event(wire.Msg{Type: wire.Record, Worker: 0, OK: true, CostUSD: 0.25, LatencyMS: 500})
	tl.Event(wire.Msg{Type: wire.Record, Worker: 0, Class: "bad_request", LatencyMS: 9000})
	tl.Event(wire.Msg{Type: wire.Retry, Worker: 0, Class: "rate_limited", Status: 429})
	tl.Event(wire.Msg{Type: wire.Retry, Worker: 1, Class: "rate_limited", Status: 429})
	tl.Event(wire.Msg{Type: wire.Retry, Worker: 1, Class: "server_error", Status: 500})
	s := tl.Snapshot()
	if s.RetriesByClass["rate_limited"] != 2 || s.RetriesByClass["server_error"] != 1 {
		t.Errorf("retries by class %v", s.RetriesByClass)
	}
	if tl.Spent() != s.CostUSD {
		t.Errorf("Spent %v, Snapshot's cost %v", tl.Spent(), s.CostUSD)
	}
	if s.CostUSD != 3.5 || s.PassCostUSD != 0.5 || s.RequestSeconds != 2 {
		t.Errorf("cost %v (pass %v), request seconds %v; want 3.5 for the budget, 0.5 this pass, 2 s of answered requests", s.CostUSD, s.PassCostUSD, s.RequestSeconds)
	}
}

func newClock() *testclock.Clock { return testclock.New(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)) }

// An agent record's turns and fallback are counted, and the plain line shows them.
func TestAgentCounters(t *testing.T) {
	d := New(nil)
	d.Start(3)
	d.Event(wire.Msg{Type: wire.Record, Worker: 0, OK: true, Turns: 3})
	d.Event(wire.Msg{Type: wire.Record, Worker: 0, OK: true, Turns: 6, Fallback: true})
	d.Event(wire.Msg{Type: wire.Record, Worker: 0, OK: true})
	s := d.Snapshot()
	if s.AgentRecords != 2 || s.AgentTurns != 9 || s.AgentFallbacks != 1 {
		t.Errorf("agent counters %d records, %d turns, %d fallbacks; want 2, 9, 1", s.AgentRecords, s.AgentTurns, s.AgentFallbacks)
	}
}

// The latency model recovers a latency that grows with the input tokens, and its factor's
// median, from answered records; with too few answers it has none.
func TestLatencyModel(t *testing.T) {
	d := New(time.Now)
	factors := []float64{0.5, 0.8, 1, 1.2, 3} // median 1
	for i := range 200 {
		tokens := int64(500 + 50*i)
		ms := (100 + 60*float64(tokens)/1000) * factors[i%len(factors)]
		if i == 10 {
			if _, ok := d.Latencies(); ok {
				t.Fatal("a model from 10 answers")
			}
		}
		d.Event(wire.Msg{Type: wire.Record, Worker: 1, OK: true, InputTokens: tokens, LatencyMS: int64(ms)})
	}
	m, ok := d.Latencies()
	if !ok {
		t.Fatal("no model from 200 answers")
	}
	pred := func(tokens float64) float64 { return m.Median * (m.BaseMS + m.PerKTokMS*tokens/1000) }
	for _, tokens := range []float64{1000, 5000, 10000} {
		want := 100 + 60*tokens/1000
		if got := pred(tokens); got < 0.85*want || got > 1.15*want {
			t.Errorf("median latency at %.0f tokens %.0f ms, want about %.0f (model %+v)", tokens, got, want, m)
		}
	}
}
