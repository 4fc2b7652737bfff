package display

import (
	"reflect"
	"testing"
	"time"

	"github.com/trialcat/trialcat/internal/event"
)

func TestCountersFromEvents(t *testing.T) {
	rec := func(batch int, ok bool) event.Event {
		return event.Event{Type: event.Record, Worker: batch, OK: ok, InputTokens: 100, CachedTokens: 10, OutputTokens: 20, CostUSD: 0.5}
	}
	tests := []struct {
		name    string
		feed    func(d *Display)
		want    Snapshot
		workers []WorkerSnapshot
	}{
		{
			name: "fresh run",
			feed: func(d *Display) {
				d.WorkerStarted(1, 3)
				d.Event(event.Event{Type: event.Start, Worker: 1, Pending: 3})
				d.Event(rec(1, true))
				d.Event(rec(1, false))
				d.Event(event.Event{Type: event.Retry, Worker: 1, Status: 429})
				d.Event(event.Event{Type: event.Retry, Worker: 1, Status: 500})
				d.Event(event.Event{Type: event.Retry, Worker: 1})
			},
			want: Snapshot{Total: 10, Done: 2, Succeeded: 1, Failed: 1, Retries: 3, RateLimited: 1,
				InputTokens: 200, CachedTokens: 20, OutputTokens: 40, CostUSD: 1, Running: 1},
			workers: []WorkerSnapshot{{Batch: 1, Records: 3, Done: 2, Running: true}},
		},
		{
			name: "resume counts what an earlier run did as done but not in the rate",
			feed: func(d *Display) {
				d.WorkerStarted(2, 5)
				d.Event(event.Event{Type: event.Start, Worker: 2, Done: 4, Pending: 1})
				d.Event(rec(2, true))
				d.WorkerEnded(2, "exit status 0")
			},
			want: Snapshot{Total: 10, Done: 5, Skipped: 4, Succeeded: 1,
				InputTokens: 100, CachedTokens: 10, OutputTokens: 20, CostUSD: 0.5},
			workers: []WorkerSnapshot{{Batch: 2, Records: 5, Done: 5, Exit: "exit status 0"}},
		},
		{
			name: "a restarted worker's start does not count its predecessor's records twice",
			feed: func(d *Display) {
				d.WorkerStarted(1, 4)
				d.Event(event.Event{Type: event.Start, Worker: 1, Done: 1, Pending: 3})
				d.Event(rec(1, true))
				d.Restart(1)
				d.WorkerStarted(1, 4)
				d.Event(event.Event{Type: event.Start, Worker: 1, Done: 2, Pending: 2})
				d.Event(rec(1, true))
			},
			want: Snapshot{Total: 10, Done: 3, Skipped: 1, Succeeded: 2, Restarts: 1,
				InputTokens: 200, CachedTokens: 20, OutputTokens: 40, CostUSD: 1, Running: 1},
			workers: []WorkerSnapshot{{Batch: 1, Records: 4, Done: 3, Restarts: 1, Running: true}},
		},
		{
			name: "rows a crashed worker wrote but never reported count once it restarts",
			feed: func(d *Display) {
				d.WorkerStarted(1, 4)
				d.Event(event.Event{Type: event.Start, Worker: 1, Pending: 4})
				d.Event(rec(1, true))
				d.Restart(1)
				d.Event(event.Event{Type: event.Start, Worker: 1, Done: 3, Pending: 1})
			},
			want: Snapshot{Total: 10, Done: 3, Succeeded: 1, Restarts: 1,
				InputTokens: 100, CachedTokens: 10, OutputTokens: 20, CostUSD: 0.5, Running: 1},
			workers: []WorkerSnapshot{{Batch: 1, Records: 4, Done: 3, Restarts: 1, Running: true}},
		},
		{
			name: "cost of an earlier run",
			feed: func(d *Display) {
				d.AddCost(2)
				d.Event(rec(1, true))
			},
			want:    Snapshot{Total: 10, Done: 1, Succeeded: 1, InputTokens: 100, CachedTokens: 10, OutputTokens: 20, CostUSD: 2.5},
			workers: []WorkerSnapshot{{Batch: 1, Done: 1}},
		},
		{
			name: "unknown price and a refused run",
			feed: func(d *Display) {
				d.Event(event.Event{Type: event.Record, Worker: 1, OK: true, InputTokens: 7, CostUnknown: true})
				d.Event(event.Event{Type: event.Fatal, Worker: 1, Status: 401})
				d.Event(event.Event{Type: event.End, Worker: 1, Done: 1})
			},
			want:    Snapshot{Total: 10, Done: 1, Succeeded: 1, InputTokens: 7, CostUnknown: true, Fatal: true},
			workers: []WorkerSnapshot{{Batch: 1, Done: 1}},
		},
		{
			name: "workers are listed in batch order",
			feed: func(d *Display) {
				for _, n := range []int{3, 1, 2} {
					d.WorkerStarted(n, 1)
				}
				d.WorkerEnded(2, "exit status 1")
			},
			want: Snapshot{Total: 10, Running: 2},
			workers: []WorkerSnapshot{{Batch: 1, Records: 1, Running: true}, {Batch: 2, Records: 1, Exit: "exit status 1"},
				{Batch: 3, Records: 1, Running: true}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, _, _ := newDisplay(t, Off)
			d.Start(10)
			tt.feed(d)
			got := d.Snapshot()
			// Time-dependent fields are checked in TestRateAndETA.
			for i := range got.Workers {
				got.Workers[i].Rate = 0
			}
			workers := got.Workers
			got.Workers, got.Rate, got.ETA, got.ETAKnown, got.Elapsed = nil, 0, 0, false, 0
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
		etaText  string
	}{
		{name: "nothing done yet", elapsed: time.Minute, etaText: "unknown"},
		{name: "no time passed", done: 5, etaText: "unknown"},
		{name: "steady", done: 60, elapsed: 2 * time.Minute, rate: 30, eta: 280 * time.Second, etaKnown: true, etaText: "4m40s"},
		{name: "skipped records are done but not part of the rate", skipped: 100, done: 30, elapsed: time.Minute,
			rate: 30, eta: 140 * time.Second, etaKnown: true, etaText: "2m20s"},
		{name: "slow", done: 1, elapsed: time.Hour, rate: 1.0 / 60, eta: 199 * time.Hour, etaKnown: true, etaText: "199h0m"},
		{name: "all done", skipped: 150, done: 50, elapsed: time.Minute, rate: 50, etaKnown: true, etaText: "0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, _, clk := newDisplay(t, Off)
			d.Start(200)
			d.Event(event.Event{Type: event.Start, Worker: 1, Done: tt.skipped, Pending: 200 - tt.skipped})
			for range tt.done {
				d.Event(event.Event{Type: event.Record, Worker: 1, OK: true})
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
			if got := s.etaString(); got != tt.etaText {
				t.Errorf("eta text %q, want %q", got, tt.etaText)
			}
		})
	}
}

func TestWorkerRateIsOfItsCurrentProcess(t *testing.T) {
	d, _, clk := newDisplay(t, Off)
	d.Start(100)
	d.WorkerStarted(4, 50)
	for range 10 {
		d.Event(event.Event{Type: event.Record, Worker: 4, OK: true})
	}
	clk.Add(2 * time.Minute)
	if got := d.Snapshot().Workers[0].Rate; got != 5 {
		t.Fatalf("rate of the first process %v, want 5 per minute", got)
	}
	d.Restart(4)
	d.WorkerStarted(4, 50)
	clk.Add(time.Minute)
	d.Event(event.Event{Type: event.Record, Worker: 4, OK: true})
	w := d.Snapshot().Workers[0]
	if w.Rate != 1 || w.Done != 11 || w.Restarts != 1 {
		t.Fatalf("after a restart: %+v, want rate 1, done 11, restarts 1", w)
	}
}

func TestLine(t *testing.T) {
	tests := []struct {
		name string
		s    Snapshot
		want string
	}{
		{
			name: "running",
			s: Snapshot{Total: 400, Done: 240, Rate: 118.4, ETA: 81 * time.Second, ETAKnown: true, CostUSD: 0.01234,
				InputTokens: 51234, OutputTokens: 8123, Retries: 3, RateLimited: 1, Failed: 2, Restarts: 1, Running: 20},
			want: "progress 240/400 (60.0%) 118 rec/min eta 1m21s cost $0.0123 tokens 51234/8123 retries 3 (429s 1) failed 2 restarts 1 workers 20",
		},
		{
			name: "just started, a price unknown",
			s:    Snapshot{Total: 7, Rate: 0, CostUnknown: true, Running: 2},
			want: "progress 0/7 (0.0%) 0.0 rec/min eta unknown cost $0.0000+unknown tokens 0/0 retries 0 (429s 0) failed 0 restarts 0 workers 2",
		},
		{
			name: "empty input",
			s:    Snapshot{ETAKnown: true},
			want: "progress 0/0 (100.0%) 0.0 rec/min eta 0s cost $0.0000 tokens 0/0 retries 0 (429s 0) failed 0 restarts 0 workers 0",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.s.Line(); got != tt.want {
				t.Errorf("\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestFormats(t *testing.T) {
	durations := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"}, {499 * time.Millisecond, "0s"}, {45 * time.Second, "45s"}, {81 * time.Second, "1m21s"},
		{time.Hour + 59*time.Minute + 59*time.Second, "1h59m"}, {50 * time.Hour, "50h0m"},
	}
	for _, tt := range durations {
		if got := fmtDuration(tt.d); got != tt.want {
			t.Errorf("fmtDuration(%s) = %q, want %q", tt.d, got, tt.want)
		}
	}
	counts := []struct {
		n    int64
		want string
	}{{0, "0"}, {9999, "9999"}, {51234, "51.2k"}, {3_400_000, "3.40M"}}
	for _, tt := range counts {
		if got := fmtCount(tt.n); got != tt.want {
			t.Errorf("fmtCount(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
	rates := []struct {
		r    float64
		want string
	}{{0, "0.0"}, {2.26, "2.3"}, {10, "10"}, {118.4, "118"}}
	for _, tt := range rates {
		if got := fmtRate(tt.r); got != tt.want {
			t.Errorf("fmtRate(%v) = %q, want %q", tt.r, got, tt.want)
		}
	}
}
