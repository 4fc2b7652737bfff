package worker

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/trialcat/trialcat/internal/cache"
	"github.com/trialcat/trialcat/internal/llm"
	"github.com/trialcat/trialcat/internal/record"
)

// vote is one answer of a --votes run, as worker_N_votes.jsonl holds it.
type vote struct {
	ID           string         `json:"id"`
	Vote         int            `json:"vote"`
	Values       map[string]any `json:"values"`
	Model        string         `json:"model"`
	InputTokens  int64          `json:"input_tokens"`
	CachedTokens int64          `json:"cached_tokens"`
	OutputTokens int64          `json:"output_tokens"`
	Attempts     int            `json:"attempts"`
	LatencyMS    int64          `json:"latency_ms"`
	Cached       bool           `json:"cached,omitempty"`
	// Stage is the --cascade model's index the vote asked (0: the first model).
	Stage int `json:"stage,omitempty"`
	// Tier is the service tier the vote was answered on ("" for none said).
	Tier string `json:"tier,omitempty"`
}

// votesLog is the batch's votes journal: the votes of the records not done yet, by ID, and the
// file new votes are appended to (one write a line).
type votesLog struct {
	mu   sync.Mutex
	f    *os.File
	have map[string][]vote
}

// openVotes reads the journal (a torn last line is ignored and cut off) and opens it to append.
func openVotes(path string, done map[string]bool) (*votesLog, error) {
	l := &votesLog{have: map[string][]vote{}}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	var good int64
	br := bufio.NewReader(f)
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			break // EOF, or a torn last line (no newline): cut below
		}
		var v vote
		if json.Unmarshal(line, &v) != nil {
			break
		}
		good += int64(len(line))
		if !done[v.ID] {
			l.have[v.ID] = append(l.have[v.ID], v)
		}
	}
	if err := f.Truncate(good); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.Seek(good, 0); err != nil {
		f.Close()
		return nil, err
	}
	l.f = f
	return l, nil
}

func (l *votesLog) add(v vote) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.f.Write(append(b, '\n')); err != nil {
		return err
	}
	l.have[v.ID] = append(l.have[v.ID], v)
	return nil
}

func (l *votesLog) of(id string) []vote {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]vote(nil), l.have[id]...)
}

func (l *votesLog) close() {
	if l != nil && l.f != nil {
		l.f.Close()
	}
}

// spentOnVotes is the attempts a record's journaled votes took: they ended, so they are not
// attempts a crash cut short.
func (l *votesLog) spentOnVotes(id string) int {
	n := 0
	for _, v := range l.of(id) {
		n += v.Attempts
	}
	return n
}

// askVotes asks rec until it has --votes answers (those journaled by an earlier process count),
// then records each field's majority and its confidence.
func (r *runner) askVotes(ctx context.Context, rec record.Record) error {
	req, fail := r.request(rec)
	if fail != nil {
		return fail()
	}
	votes, err := r.getVotes(ctx, rec, req, 0)
	if err != nil {
		return r.settle(ctx, rec.ID, err, r.votesSpent(rec.ID))
	}
	cells, _ := r.majority(votes)
	return r.record(rec.ID, r.votesSpent(rec.ID), answerInfo{cells: cells})
}

// getVotes returns the --votes answers of stage (a --cascade model) for req, asking those the
// journal lacks and journaling each as it arrives.
func (r *runner) getVotes(ctx context.Context, rec record.Record, req llm.Request, stage int) ([]vote, error) {
	k := r.spec.Votes
	of := func() []vote {
		var out []vote
		for _, v := range r.votes.of(rec.ID) {
			if v.Stage == stage {
				out = append(out, v)
			}
		}
		return out
	}
	base := r.cacheKey(req) // the request's key; each vote's is derived from it
	for n := len(of()); n < k; n++ {
		key := base
		if key != "" {
			key = cache.Key(r.cacheHost, []byte(base+"\x00vote="+strconv.Itoa(n)))
		}
		var res llm.Result
		cached := false
		if c, ok := r.fromCache(key, rec.ID); ok {
			res, cached = c, true
			res.Attempts = 0
		} else {
			caller := r.callerFor(req)
			var err error
			if res, err = caller.Call(ctx, req, 0); err != nil {
				return nil, err
			}
			r.store(key, res)
		}
		u := res.Usage
		if err := r.votes.add(vote{ID: rec.ID, Vote: n, Stage: stage, Values: res.Values, Model: res.Model, Tier: res.Tier, InputTokens: u.InputTokens,
			CachedTokens: u.CachedInputTokens, OutputTokens: u.OutputTokens, Attempts: res.Attempts, LatencyMS: res.Latency.Milliseconds(), Cached: cached}); err != nil {
			return nil, r.writeFailed(r.files.Votes, err)
		}
	}
	votes := of()
	return votes[:min(len(votes), k)], nil
}

// votesSpent sums a record's journaled votes: tokens by model, attempts and latency.
func (r *runner) votesSpent(id string) llm.Result {
	res := llm.Result{Billed: map[llm.Charge]llm.Usage{}}
	for _, v := range r.votes.of(id) {
		u := llm.Usage{InputTokens: v.InputTokens, CachedInputTokens: v.CachedTokens, OutputTokens: v.OutputTokens}
		res.Usage = res.Usage.Add(u)
		res.Billed[llm.Charge{Model: v.Model, Tier: v.Tier}] = res.Billed[llm.Charge{Model: v.Model, Tier: v.Tier}].Add(u)
		res.Attempts += v.Attempts
		res.Latency += time.Duration(v.LatencyMS) * time.Millisecond
		res.Model, res.Tier = v.Model, v.Tier
	}
	return res
}

// majority is the row's cells from its votes: each category field's most frequent value (a tie
// goes to the value of the earliest vote among the tied), free-text fields the first vote's,
// then each category field's confidence, the winner's share of the votes; and those
// confidences by field.
func (r *runner) majority(votes []vote) ([]string, map[string]float64) {
	cols := r.schema.Columns()
	cells := make([][]string, len(votes))
	for i, v := range votes {
		cells[i] = r.schema.Cells(v.Values)
	}
	voted := map[string]bool{}
	for _, f := range r.schema.Categories() {
		voted[f] = true
	}
	out := make([]string, 0, len(r.layout.Columns))
	var conf []string
	byField := map[string]float64{}
	for j, c := range cols {
		if !voted[c] || len(cells) == 0 {
			if len(cells) > 0 {
				out = append(out, cells[0][j])
			} else {
				out = append(out, "")
			}
			continue
		}
		count := map[string]int{}
		for _, cs := range cells {
			count[cs[j]]++
		}
		best := cells[0][j]
		for _, cs := range cells { // in vote order: the earliest of the tied stays
			if count[cs[j]] > count[best] {
				best = cs[j]
			}
		}
		out = append(out, best)
		share := float64(count[best]) / float64(len(cells))
		byField[c] = share
		conf = append(conf, strconv.FormatFloat(share, 'f', 3, 64))
	}
	return append(out, conf...), byField
}

func (r *runner) openVotesLog() error {
	if r.spec.Votes <= 1 {
		return nil
	}
	var err error
	r.votes, err = openVotes(r.files.Votes, r.skip)
	return err
}
