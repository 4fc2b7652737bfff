package coordinator

import (
	"fmt"
	"sync"
	"time"

	"github.com/trialcat/trialcat/internal/event"
)

// progress tallies the workers' events for live reporting. The results files stay the record of
// truth; these counts are for people watching.
type progress struct {
	now   func() time.Time
	start time.Time
	total int64

	mu                                   sync.Mutex
	skipped, answered, failed            int64
	retries, rateLimited, restarts       int64
	inputTokens, cachedTokens, outputTok int64
	cost                                 float64
	costUnknown                          bool
}

func newProgress(total int64, now func() time.Time) *progress {
	return &progress{now: now, start: now(), total: total}
}

func (p *progress) add(ev event.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch ev.Type {
	case event.Start:
		p.skipped += ev.Done
	case event.Record:
		if ev.OK {
			p.answered++
		} else {
			p.failed++
		}
		p.inputTokens += ev.InputTokens
		p.cachedTokens += ev.CachedTokens
		p.outputTok += ev.OutputTokens
		p.cost += ev.CostUSD
		p.costUnknown = p.costUnknown || ev.CostUnknown
	case event.Retry:
		p.retries++
		if ev.Status == 429 {
			p.rateLimited++
		}
	}
}

func (p *progress) addCost(usd float64) {
	p.mu.Lock()
	p.cost += usd
	p.mu.Unlock()
}

func (p *progress) spent() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cost
}

func (p *progress) restart() {
	p.mu.Lock()
	p.restarts++
	p.mu.Unlock()
}

// line is one plain progress line: done/total, rate, ETA, cost, retries, failures.
func (p *progress) line(running int) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	done := p.skipped + p.answered + p.failed
	elapsed := p.now().Sub(p.start)
	rate := 0.0
	if elapsed > 0 {
		rate = float64(p.answered+p.failed) / elapsed.Minutes()
	}
	eta := "unknown"
	if rate > 0 {
		left := float64(p.total-done) / rate
		eta = (time.Duration(left * float64(time.Minute))).Round(time.Second).String()
	}
	cost := fmt.Sprintf("$%.4f", p.cost)
	if p.costUnknown {
		cost += "+unknown"
	}
	return fmt.Sprintf("progress %d/%d done (%.1f%%), %.0f records/min, eta %s, %d workers running, tokens in/out %d/%d, cost %s, retries %d (429s %d), failed %d, restarts %d",
		done, p.total, pct(done, p.total), rate, eta, running, p.inputTokens, p.outputTok, cost, p.retries, p.rateLimited, p.failed, p.restarts)
}

func (p *progress) counts() (retries, rateLimited, restarts int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.retries, p.rateLimited, p.restarts
}

func pct(a, b int64) float64 {
	if b == 0 {
		return 100
	}
	return 100 * float64(a) / float64(b)
}
