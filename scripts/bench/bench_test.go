package main

import (
	"math"
	"testing"
	"time"
)

func TestParsePhases(t *testing.T) {
	at := func(ms int) time.Duration { return time.Duration(ms) * time.Millisecond }
	// Lines as the coordinator prints them with --progress off --log-level debug.
	run := &procRun{Wall: at(5000), Lines: []logLine{
		{at(10), "2026-11-26T13:07:08Z [INFO]  coordinator: checking input: path=in.jsonl"},
		{at(1010), "2026-11-26T13:07:09Z [INFO]  coordinator: wrote batches: batches=2 records=4 out=o"},
		{at(1020), "2026-11-26T13:07:09Z [DEBUG] coordinator.worker-0: started: pid=1 path=/bin/worker"},
		{at(1020), "2026-11-26T13:07:09Z [DEBUG] coordinator.worker-0: started: pid=1 batch=0 records=2"},
		{at(1030), "2026-11-26T13:07:09Z [DEBUG] coordinator.worker-1: started: pid=2 batch=1 records=2"},
		{at(1120), "2026-11-26T13:07:09Z [INFO]  coordinator.worker-0: batch started: worker=0 pending=2 done=0"},
		{at(1330), "2026-11-26T13:07:09Z [INFO]  coordinator.worker-1: batch started: worker=1 pending=2 done=0"},
		{at(3000), "2026-11-26T13:07:11Z [INFO]  coordinator.worker-0: batch finished: worker=0 answered=2"},
		{at(3010), `2026-11-26T13:07:11Z [INFO]  coordinator.worker-0: finished: exit="exit 0" seconds=2.0`},
		{at(4000), "2026-11-26T13:07:12Z [INFO]  coordinator.worker-1: batch finished: worker=1 answered=1"},
		{at(4030), `2026-11-26T13:07:12Z [WARN]  coordinator.worker-1: finished with failed records: exit="exit 1"`},
	}}
	p := parsePhases(run)
	tests := []struct {
		name      string
		got, want float64
	}{
		{"start-up", p.StartupS, 0.01},
		{"check and split", p.SplitS, 1.0},
		{"to first spawn", p.FirstSpawnS, 0.01},
		{"workers", p.WorkersS, 3.01},
		{"merge", p.MergeS, 0.97},
		{"spawns", float64(p.Spawns), 2},
		{"spawn to ready mean ms", p.SpawnReadyMean, 200},
		{"spawn to ready max ms", p.SpawnReadyMax, 300},
		{"exit seen mean ms", p.ExitSeenMean, 20},
		{"overhead", p.OverheadS, 0.01 + 1.0 + 0.01 + 0.97},
	}
	for _, tt := range tests {
		if math.Abs(tt.got-tt.want) > 1e-9 {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

func TestMaxInWindow(t *testing.T) {
	base := time.Unix(0, 0)
	tests := []struct {
		name    string
		secs    []float64
		weights []int64
		want    int64
	}{
		{"empty", nil, nil, 0},
		{"all within a minute", []float64{0, 10, 59.9}, []int64{1, 1, 1}, 3},
		{"exactly 60s apart are not in one span", []float64{0, 60}, []int64{5, 7}, 7},
		{"heaviest span wins", []float64{0, 30, 70, 80, 100}, []int64{1, 1, 4, 4, 4}, 12},
	}
	for _, tt := range tests {
		got := maxInWindow(len(tt.secs),
			func(i int) time.Time { return base.Add(time.Duration(tt.secs[i] * float64(time.Second))) },
			func(i int) int64 { return tt.weights[i] })
		if got != tt.want {
			t.Errorf("%s: got %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestGreedyBound(t *testing.T) {
	rows := func(ms ...float64) []resultRow {
		var out []resultRow
		for _, m := range ms {
			out = append(out, resultRow{LatencyMS: m})
		}
		return out
	}
	tests := []struct {
		name    string
		rows    []resultRow
		workers int
		want    float64
	}{
		{"even work is perfect", rows(1, 1, 1, 1), 2, 1},
		{"one long record sets the makespan", rows(1, 1, 1, 5), 2, 4.0 / 6.0},
		{"one worker is always perfect", rows(3, 1, 7), 1, 1},
	}
	for _, tt := range tests {
		if got := greedyBound(tt.rows, tt.workers); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}
