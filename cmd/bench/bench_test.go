package main

import (
	"math"
	"testing"
	"time"

	"github.com/trialcat/trialcat/internal/summary"
)

func TestParsePhases(t *testing.T) {
	start := time.Date(2026, 11, 26, 13, 7, 8, 0, time.UTC)
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	run := &procRun{Started: start, Wall: 5000 * time.Millisecond}
	sum := &summary.Summary{
		WorkerProcesses: 3,
		Phases:          summary.Phases{CheckingInputAt: at(10), BatchesReadyAt: at(1010), FirstWorkerAt: at(1020), LastWorkerExitAt: at(4030)},
		Workers: []summary.WorkerSummary{
			{WorkerRun: summary.WorkerRun{Batch: 0, Processes: 1, SpawnReadyMS: 100, ExitSeenMS: 10}},
			{WorkerRun: summary.WorkerRun{Batch: 1, Processes: 2, SpawnReadyMS: 300, ExitSeenMS: 30}},
			{WorkerRun: summary.WorkerRun{Batch: 2, Exit: "not started"}},
		},
	}
	p := parsePhases(run, sum)
	tests := []struct {
		name      string
		got, want float64
	}{
		{"start-up", p.StartupS, 0.01},
		{"check and split", p.SplitS, 1.0},
		{"to first spawn", p.FirstSpawnS, 0.01},
		{"workers", p.WorkersS, 3.01},
		{"merge", p.MergeS, 0.97},
		{"spawns", float64(p.Spawns), 3},
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
