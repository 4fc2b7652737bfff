package engine

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/trialcat/trialcat/internal/proc"
	"github.com/trialcat/trialcat/internal/runspec"
	"github.com/trialcat/trialcat/internal/summary"
	"github.com/trialcat/trialcat/internal/testclock"
	"github.com/trialcat/trialcat/internal/wire"
)

func TestWatchKillsAWorkerThatIsAliveButDoesNothing(t *testing.T) {
	clk := testclock.New(time.Unix(1e9, 0))
	s := &scheduler{opts: &Options{StallAfter: time.Hour}, deps: &Deps{Now: clk.Now},
		spec: &runspec.Spec{Timeout: runspec.Duration(time.Second)}, heard: map[int]*liveness{}}
	p, err := proc.Start(t.Context(), proc.Spec{Path: "/bin/sleep", Args: []string{"60"}})
	if err != nil {
		t.Fatal(err)
	}
	stop := s.watch(t.Context(), 3, p, hclog.NewNullLogger())
	defer stop()
	// Heartbeats keep coming, with the same counters: alive, but no attempt and no record.
	beat := wire.Msg{Type: wire.Heartbeat, Started: 4, Done: 2}
	for range 30 {
		s.hear(3, beat)
		clk.Add(2 * time.Second) // 60 s in all: under 2 × 1 s + 60 s
	}
	time.Sleep(100 * time.Millisecond)
	select {
	case <-exited(p):
		t.Fatal("killed within 2 × --timeout + 60 s")
	default:
	}
	// A request waiting for a permit is waiting on the coordinator, not stalled.
	s.hear(3, wire.Msg{Type: wire.Heartbeat, Started: 4, Done: 2, Waiting: 1})
	clk.Add(61 * time.Second)
	time.Sleep(100 * time.Millisecond)
	select {
	case <-exited(p):
		t.Fatal("killed while waiting for a permit")
	default:
	}
	clk.Add(2 * time.Second) // 63 s since the last progress
	select {
	case <-exited(p):
	case <-time.After(10 * time.Second):
		t.Fatal("a worker that did nothing for 2 × --timeout + 60 s was not killed")
	}
}

func exited(p *proc.Process) <-chan struct{} {
	c := make(chan struct{})
	go func() {
		p.Wait()
		close(c)
	}()
	return c
}

func TestSummaryTableHasARowPerWorkerNotPerBatch(t *testing.T) {
	sum := &summary.Summary{Out: "out", Records: 116}
	for b := range 116 {
		sum.Workers = append(sum.Workers, summary.WorkerSummary{
			WorkerRun: summary.WorkerRun{Batch: b, Records: 1, Started: true, Slot: b % 4, Retries: 1},
			Succeeded: 1})
	}
	var out strings.Builder
	printSummary(sum, &out, true)
	rows := 0
	for _, l := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(l); len(f) == 10 && f[0] != "worker" {
			rows++
			if f[1] != "29" || f[6] != "29" {
				t.Errorf("row %q; want 29 batches and 29 retries per worker", l)
			}
		}
	}
	if rows != 4 {
		t.Errorf("%d rows for 4 workers over 116 batches:\n%s", rows, out.String())
	}
}
