package worker

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"

	"github.com/trialcat/trialcat/internal/rundir"
	"github.com/trialcat/trialcat/internal/runspec"
)

func TestShareOfTheRunsLimit(t *testing.T) {
	for _, tc := range []struct{ limit, k, want int }{
		{600, 3, 200}, {600, 1, 600}, {600, 0, 600}, {0, 4, 0}, {5, 10, 1}, {7, 2, 3},
	} {
		if got := shareOf(tc.limit, max(tc.k, 1)); got != tc.want {
			t.Errorf("shareOf(%d, %d) = %d, want %d", tc.limit, tc.k, got, tc.want)
		}
	}
}

// A task that is one of K running at once, with no limit server, keeps to 1/K of the run's
// requests per minute: in one minute it gets its share of permits, not the whole limit.
func TestAWorkerKeepsToItsShareWithoutALimitServer(t *testing.T) {
	for _, share := range []int{1, 3} {
		synctest.Test(t, func(t *testing.T) {
			spec := &runspec.Spec{RPM: 60}
			permits, closeFn := standalonePermits(t.Context(), spec, rundir.New(t.TempDir()), share, zerolog.Nop())
			defer closeFn()
			ctx, cancel := context.WithTimeout(t.Context(), 59*time.Second)
			defer cancel()
			granted := 0
			for permits.Wait(ctx, 1) == nil {
				granted++
			}
			// The limiter paces its grants over the minute: about rpm/share of them, never more.
			if want := 60 / share; granted > want || granted < want*9/10 {
				t.Errorf("share %d: %d permits in a minute, want about %d (rpm 60 / %d tasks)", share, granted, want, share)
			}
		})
	}
}
