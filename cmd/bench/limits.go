package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/trialcat/trialcat/internal/fakeai"
)

// limitResult is one limit-bound run: the fake enforces the limit over a sliding 60s window, the
// coordinator gets the same limit as --rpm or --tpm, and far more request slots than the limit
// needs (workers × concurrency), so only the limiter keeps the run inside it.
type limitResult struct {
	Kind        string  `json:"kind"` // rpm or tpm
	Limit       int     `json:"limit"`
	Workers     int     `json:"workers"`
	Concurrency int     `json:"concurrency"`
	Records     int     `json:"records"`
	WallS       float64 `json:"wall_s"`
	Succeeded   int64   `json:"succeeded"`
	Failed      int64   `json:"failed"`
	// Requests is every request the fake received; Status429 those it answered 429 (over its
	// limit); Share429 = Status429 / Requests.
	Requests  int     `json:"requests"`
	Accepted  int     `json:"accepted"`
	Status429 int     `json:"status_429"`
	Share429  float64 `json:"share_429"`
	// The steady-state window: from TrimS after the first accepted request to TrimS before the
	// last one, in seconds since the first.
	WindowFromS float64 `json:"window_from_s"`
	WindowToS   float64 `json:"window_to_s"`
	// RequestsPerMin and TokensPerMin are the accepted rate at the server in the window;
	// UsedShare is the bound one over Limit.
	RequestsPerMin float64 `json:"accepted_requests_per_min"`
	TokensPerMin   float64 `json:"accepted_tokens_per_min"`
	UsedShare      float64 `json:"used_share"`
	// WithOutputShare is the TPM share counting completion tokens too, as the coordinator's
	// limiter does (fakeai's TPM counts prompt tokens only): TokensPerMin × (in+out)/in.
	WithOutputShare float64 `json:"used_share_with_output_tokens,omitempty"`
	// Max60s is the most requests (rpm) or tokens (tpm) accepted in any 60s span (meaningful
	// only when the run lasts over 60s).
	Max60s int64 `json:"max_in_any_60s"`
	// Retries and RateLimited are the coordinator's own counts (summary.json).
	Retries     int64     `json:"retries"`
	RateLimited int64     `json:"coordinator_429s"`
	Run         *coordRun `json:"run"`
}

// limitPlan is the size of the limit-bound runs.
type limitPlan struct {
	kind                 string
	limit                int
	records              int
	workers, concurrency int
	trim                 time.Duration
}

func (b *bench) limitPlans() []limitPlan {
	// The real records average about 2,400 prompt tokens as fakeai counts them (len/4).
	if b.cfg.Quick {
		return []limitPlan{
			{kind: "rpm", limit: 3000, records: 100, workers: 10, concurrency: 4, trim: 500 * time.Millisecond},
			{kind: "tpm", limit: 6_000_000, records: 100, workers: 10, concurrency: 4, trim: 500 * time.Millisecond},
		}
	}
	return []limitPlan{
		// 600 RPM: 10 requests/s for 80s, against 80 request slots that could do 330/s.
		{kind: "rpm", limit: 600, records: 800, workers: 20, concurrency: 4, trim: 5 * time.Second},
		// 1M TPM: about 400 requests/min for 80s; no request limit.
		{kind: "tpm", limit: 1_000_000, records: 530, workers: 20, concurrency: 4, trim: 5 * time.Second},
		// A short run at a binding limit: 25 requests/s for 16s, counted over the whole span
		// from the first accepted request to the last (no steady window: the start counts).
		{kind: "rpm", limit: 1500, records: 400, workers: 8, concurrency: 4},
	}
}

func (b *bench) limits(ctx context.Context) (any, error) {
	fmt.Fprintf(b.out, "## Limit-bound: fake RPM/TPM over a sliding 60s window, the same --rpm/--tpm given to the coordinator\n\n")
	var all []limitResult
	for _, p := range b.limitPlans() {
		r, err := b.limitRun(ctx, p)
		if r != nil {
			all = append(all, *r)
			fmt.Fprintf(b.out, "  %s %d: %d records in %.1fs, %.1f%% of the limit used, %d 429s (%.2f%%)\n",
				r.Kind, r.Limit, r.Records, r.WallS, 100*r.UsedShare, r.Status429, 100*r.Share429)
		}
		if err != nil {
			return all, err
		}
	}
	fmt.Fprintln(b.out)
	var rows [][]string
	for _, r := range all {
		perMin := fmt.Sprintf("%.0f req", r.RequestsPerMin)
		max60 := fmt.Sprintf("%d req", r.Max60s)
		if r.Kind == "tpm" {
			perMin = fmt.Sprintf("%.0f tok", r.TokensPerMin)
			max60 = fmt.Sprintf("%d tok", r.Max60s)
		}
		share := pct(r.UsedShare)
		if r.WithOutputShare > 0 {
			share += fmt.Sprintf(" (%s with output tokens)", pct(r.WithOutputShare))
		}
		rows = append(rows, []string{"--" + r.Kind + " " + itoa(r.Limit), fmt.Sprintf("%d×%d", r.Workers, r.Concurrency),
			itoa(r.Records), f1(r.WallS), fmt.Sprintf("%.0f–%.0fs", r.WindowFromS, r.WindowToS), perMin,
			share, max60, itoa(r.Requests), itoa(r.Status429), fmt.Sprintf("%.2f%%", 100*r.Share429),
			fmt.Sprintf("%d/%d", r.Succeeded, r.Records)})
	}
	table(b.out, []string{"limit", "workers×conc.", "records", "wall s", "steady window", "accepted/min",
		"share of limit", "max in any 60s", "requests", "429s", "429 share", "succeeded"}, rows)
	return all, nil
}

func (b *bench) limitRun(ctx context.Context, p limitPlan) (*limitResult, error) {
	input, err := realInput(b.cfg.Sample, b.work, p.records)
	if err != nil {
		return nil, err
	}
	cfg := fakeai.Config{Seed: 7, Latency: latencyModel}
	args := []string{"--workers", itoa(p.workers), "--concurrency", itoa(p.concurrency)}
	if p.kind == "rpm" {
		cfg.RPM = p.limit
		args = append(args, "--rpm", itoa(p.limit))
	} else {
		cfg.TPM = p.limit
		args = append(args, "--tpm", itoa(p.limit))
	}
	f, err := startFake(cfg, p.kind == "tpm")
	if err != nil {
		return nil, err
	}
	defer f.stop()
	// A coordinator without a working limiter meets 429s with retry-after up to a minute: give
	// it four minutes, then interrupt it (it merges what it has).
	run, err := b.coordinator(ctx, fmt.Sprintf("limit-%s-%d", p.kind, p.limit), input, f.URL(), 4*time.Minute, args...)
	if err != nil {
		return nil, err
	}
	srv := f.stats()
	r := &limitResult{Kind: p.kind, Limit: p.limit, Workers: p.workers, Concurrency: p.concurrency, Records: p.records,
		WallS: run.Proc.WallS, Succeeded: run.Summary.Succeeded, Failed: run.Summary.Failed,
		Requests: srv.Requests, Accepted: srv.Accepted, Status429: srv.Status429,
		Retries: run.Summary.Retries, RateLimited: run.Summary.RateLimited, Run: run}
	if srv.Requests > 0 {
		r.Share429 = float64(srv.Status429) / float64(srv.Requests)
	}
	// Accepted requests with their prompt tokens, from the wrapper's samples (all but 429s).
	type acc struct {
		at     time.Time
		tokens int64
	}
	var accs []acc
	for _, s := range srv.samples {
		if s.Status != http.StatusTooManyRequests {
			accs = append(accs, acc{s.Start, int64(s.Tokens)})
		}
	}
	times := srv.acceptedTimes // fakeai's own record of admissions
	if len(times) < 2 {
		return r, fmt.Errorf("%s: the fake accepted %d requests", p.kind, len(times))
	}
	first, last := times[0], times[len(times)-1]
	from, to := first.Add(p.trim), last.Add(-p.trim)
	if !to.After(from) {
		from, to = first, last
	}
	r.WindowFromS, r.WindowToS = from.Sub(first).Seconds(), to.Sub(first).Seconds()
	span := to.Sub(from).Minutes()
	var n int
	for _, t := range times {
		if !t.Before(from) && t.Before(to) {
			n++
		}
	}
	var tok int64
	for _, a := range accs {
		if !a.at.Before(from) && a.at.Before(to) {
			tok += a.tokens
		}
	}
	r.RequestsPerMin = float64(n) / span
	r.TokensPerMin = float64(tok) / span
	if p.kind == "rpm" {
		r.UsedShare = r.RequestsPerMin / float64(p.limit)
		r.Max60s = maxInWindow(len(times), func(i int) time.Time { return times[i] }, func(int) int64 { return 1 })
	} else {
		r.UsedShare = r.TokensPerMin / float64(p.limit)
		if in := run.Summary.InputTokens; in > 0 {
			r.WithOutputShare = r.UsedShare * float64(in+run.Summary.OutputTokens) / float64(in)
		}
		r.Max60s = maxInWindow(len(accs), func(i int) time.Time { return accs[i].at }, func(i int) int64 { return accs[i].tokens })
	}
	return r, nil
}

// maxInWindow is the largest sum of weight over items whose times (ascending) fall within any
// 60s span.
func maxInWindow(n int, at func(int) time.Time, weight func(int) int64) int64 {
	var best, sum int64
	lo := 0
	for hi := 0; hi < n; hi++ {
		sum += weight(hi)
		for at(hi).Sub(at(lo)) >= time.Minute {
			sum -= weight(lo)
			lo++
		}
		best = max(best, sum)
	}
	return best
}
