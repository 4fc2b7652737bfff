package report

import (
	"bufio"
	"cmp"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/trialcat/trialcat/internal/results"
	"github.com/trialcat/trialcat/internal/rundir"
	"github.com/trialcat/trialcat/internal/summary"
)

// The names of the files read, for the notes shown in the page.
var (
	summaryFile  = filepath.Base(rundir.New("").Summary())
	resultsFile  = filepath.Base(rundir.New("").FinalResults())
	failuresFile = filepath.Base(rundir.New("").FinalFailures())
)

// run is everything the report shows, gathered from the folder's files.
type run struct {
	dir     rundir.Dir
	summary *summary.Summary // nil when summary.json is missing or unreadable
	res     *resultStats
	fail    *failureStats
	logs    []*workerLog
	notes   []string // problems met while reading, shown in the page
}

func (r *run) notef(format string, args ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

// collect reads every file of the run folder dir.
func collect(dir string) (*run, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("report %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("report %s: not a directory", dir)
	}
	r := &run{dir: rundir.New(dir)}
	r.readSummary()
	r.readResults()
	r.readFailures()
	if err := r.readLogs(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *run) readSummary() {
	path := r.dir.Summary()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		r.notef("%s is missing: the run's status and totals are unknown (the coordinator writes it when the run ends).", summaryFile)
		return
	}
	if err != nil {
		r.notef("cannot read %s: %v", summaryFile, err)
		return
	}
	var s summary.Summary
	if err := json.Unmarshal(b, &s); err != nil {
		r.notef("%s is not valid JSON (%v): the run's status and totals are unknown.", summaryFile, err)
		return
	}
	r.summary = &s
}

// resultStats are the counters kept while reading final_results.csv.
type resultStats struct {
	rows     int64
	columns  []string   // schema columns, in file order
	cats     []*counter // one per schema column
	latency  *histogram
	input    *histogram
	output   *histogram
	attempts *counter
	// turns and toolCalls count an agent run's loops: records by turns, calls by tool.
	turns, toolCalls *counter
	models           map[string]*costStats
	workers          map[int]*costStats
	// tiers, lengths and stages split the cost by service tier, by the record's prompt tokens
	// (lengthBuckets) and by how the answer was reached (stageOf).
	tiers, lengths, stages map[string]*costStats
	// costUnknown counts rows with an empty or invalid cost_usd.
	costUnknown int64
}

// costStats sums one model's or one worker's rows.
type costStats struct {
	Rows         int64
	CostUSD      float64
	CostUnknown  int64
	InputTokens  int64
	CachedTokens int64
	OutputTokens int64
	LatencyMS    float64
}

// lengthBuckets are the record-length classes of the cost breakdown: prompt tokens below each
// bound (the last has none).
var lengthBuckets = []struct {
	name  string
	below int64
}{{"under 1k", 1000}, {"1k to 2k", 2000}, {"2k to 4k", 4000}, {"4k to 8k", 8000}, {"8k to 16k", 16000}, {"16k and more", 0}}

func lengthBucket(in int64) string {
	for _, b := range lengthBuckets {
		if b.below == 0 || in < b.below {
			return b.name
		}
	}
	return ""
}

// stageOf says how a row's answer was reached, for the cost breakdown: a --cascade model's
// decision (first or escalated), the agent's loop (with or without the one-shot fallback), or one
// request; answers that made no request now are by their source.
func stageOf(source, decidedBy, escalated, turns, calls string) string {
	switch source {
	case results.SourceCache, results.SourceCarried:
		return "no request (" + source + ")"
	}
	switch {
	case decidedBy != "" && escalated != "":
		return "cascade: escalated, decided by " + decidedBy
	case decidedBy != "":
		return "cascade: decided by " + decidedBy
	case turns != "" && turns != "0":
		if _, fallback := results.ParseToolCalls(calls); fallback {
			return "agent loop, then the one-shot prompt"
		}
		return "agent loop"
	}
	return "one-shot"
}

// Caps on the number of models and workers tracked; the rest are summed under one key.
const (
	maxModels   = 200
	maxWorkers  = 100_000
	otherModel  = "(other models)"
	otherWorker = -1
)

func (r *run) readResults() {
	path := r.dir.FinalResults()
	st := &resultStats{latency: newHistogram(), input: newHistogram(), output: newHistogram(),
		attempts: newCounter(1000), turns: newCounter(1000), toolCalls: newCounter(1000),
		models: map[string]*costStats{}, workers: map[int]*costStats{},
		tiers: map[string]*costStats{}, lengths: map[string]*costStats{}, stages: map[string]*costStats{}}
	r.res = st
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		r.notef("%s is missing: no record succeeded yet, or the run did not reach its merge.", resultsFile)
		return
	}
	h, err := readHeader(path)
	if err != nil {
		r.notef("cannot read the header of %s: %v", resultsFile, err)
		return
	}
	if h == nil {
		r.notef("%s is empty.", resultsFile)
		return
	}
	col := map[string]int{}
	for i, name := range h {
		if _, dup := col[name]; !dup {
			col[name] = i
		}
	}
	idx := func(name string) int {
		if i, ok := col[name]; ok {
			return i
		}
		return -1
	}
	iModel, iIn, iOut, iCost := idx(results.ColModel), idx(results.ColInputTokens), idx(results.ColOutputTokens), idx(results.ColCostUSD)
	iAttempts, iLatency, iWorker := idx(results.ColAttempts), idx(results.ColLatencyMS), idx(results.ColWorker)
	iTurns, iCalls := idx(results.ColTurns), idx(results.ColToolCalls)
	iCached, iTier, iSource := idx(results.ColCachedTokens), idx(results.ColServiceTier), idx(results.ColSource)
	iDecided, iEscalated := idx(results.ColDecidedBy), idx(results.ColEscalated)
	tail := results.Bookkeeping()
	var schemaIdx []int
	if len(h) > len(tail) && slices.Equal(h[len(h)-len(tail):], tail) {
		for i := 1; i < len(h)-len(tail); i++ {
			schemaIdx = append(schemaIdx, i)
		}
	} else {
		r.notef("%s does not end with the columns %s: every column but the first and those is charted.",
			resultsFile, strings.Join(tail, ", "))
		for i := 1; i < len(h); i++ {
			if !slices.Contains(tail, h[i]) {
				schemaIdx = append(schemaIdx, i)
			}
		}
	}
	for _, i := range schemaIdx {
		st.columns = append(st.columns, h[i])
		st.cats = append(st.cats, newCounter(maxDistinct))
	}
	cell := func(row []string, i int) string {
		if i < 0 || i >= len(row) {
			return ""
		}
		return row[i]
	}
	_, torn, err := results.Read(path, func(row []string) error {
		st.rows++
		for k, i := range schemaIdx {
			st.cats[k].add(cell(row, i))
		}
		lat, latErr := strconv.ParseFloat(cell(row, iLatency), 64)
		if latErr == nil {
			st.latency.add(lat)
		} else {
			lat = 0
		}
		in, inErr := strconv.ParseInt(cell(row, iIn), 10, 64)
		if inErr == nil {
			st.input.add(float64(in))
		}
		out, outErr := strconv.ParseInt(cell(row, iOut), 10, 64)
		if outErr == nil {
			st.output.add(float64(out))
		}
		if iAttempts >= 0 {
			st.attempts.add(cell(row, iAttempts))
		}
		if iTurns >= 0 {
			if n, err := strconv.Atoi(cell(row, iTurns)); err == nil && n > 0 {
				st.turns.add(cell(row, iTurns))
				calls, fallback := results.ParseToolCalls(cell(row, iCalls))
				for name, k := range calls {
					for range min(k, 1000) {
						st.toolCalls.add(name)
					}
				}
				if fallback {
					st.toolCalls.add("(one-shot fallback)")
				}
			}
		}
		cost, costErr := strconv.ParseFloat(cell(row, iCost), 64)
		if costErr != nil {
			st.costUnknown++
		}
		m := st.model(cell(row, iModel))
		w := -2 // no worker column, or not a number
		if n, err := strconv.Atoi(cell(row, iWorker)); err == nil && n >= 0 {
			w = n
		}
		ws := st.worker(w)
		cached, _ := strconv.ParseInt(cell(row, iCached), 10, 64)
		tier := cmp.Or(cell(row, iTier), "(none said)")
		stage := stageOf(cell(row, iSource), cell(row, iDecided), cell(row, iEscalated), cell(row, iTurns), cell(row, iCalls))
		for _, s := range []*costStats{m, ws, costsOf(st.tiers, tier), costsOf(st.lengths, lengthBucket(in)), costsOf(st.stages, stage)} {
			s.Rows++
			s.InputTokens += in
			s.CachedTokens += cached
			s.OutputTokens += out
			s.LatencyMS += lat
			if costErr != nil {
				s.CostUnknown++
			} else {
				s.CostUSD += cost
			}
		}
		return nil
	})
	switch {
	case err != nil:
		r.notef("%s could not be read in full (%v); the charts show the %d rows read before the problem.", resultsFile, err, st.rows)
	case torn:
		r.notef("%s ends with a torn line (a crash while writing it); that line is not counted.", resultsFile)
	}
}

// failureStats are the counters kept while reading final_failures.csv.
type failureStats struct {
	present  bool
	idColumn string
	total    int64
	classes  *counter
	first    [][]string // ID, class, message, attempts, worker
}

func (r *run) readFailures() {
	path := r.dir.FinalFailures()
	st := &failureStats{classes: newCounter(1000)}
	r.fail = st
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return
	}
	st.present = true
	header, torn, err := results.Read(path, func(row []string) error {
		f, err := results.DecodeFailure(row)
		if err != nil {
			return err
		}
		st.total++
		st.classes.add(f.Class)
		if len(st.first) < maxFailureRows {
			st.first = append(st.first, results.EncodeFailure(f))
		}
		return nil
	})
	if len(header) > 0 {
		st.idColumn = header[0]
	}
	switch {
	case err != nil:
		r.notef("%s could not be read in full (%v); %d failures were read before the problem.", failuresFile, err, st.total)
	case torn:
		r.notef("%s ends with a torn line (a crash while writing it); that line is not counted.", failuresFile)
	}
}

// costsOf returns the counters of key in m, folding keys past maxModels into one.
func costsOf(m map[string]*costStats, key string) *costStats {
	if s := m[key]; s != nil {
		return s
	}
	if len(m) >= maxModels {
		key = "(others)"
		if s := m[key]; s != nil {
			return s
		}
	}
	s := &costStats{}
	m[key] = s
	return s
}

// model returns the counters of a model, folding models past maxModels into one.
func (st *resultStats) model(name string) *costStats {
	if m := st.models[name]; m != nil {
		return m
	}
	if len(st.models) >= maxModels {
		name = otherModel
		if m := st.models[name]; m != nil {
			return m
		}
	}
	m := &costStats{}
	st.models[name] = m
	return m
}

// worker returns the counters of a worker, folding workers past maxWorkers into one.
func (st *resultStats) worker(n int) *costStats {
	if w := st.workers[n]; w != nil {
		return w
	}
	if len(st.workers) >= maxWorkers {
		n = otherWorker
		if w := st.workers[n]; w != nil {
			return w
		}
	}
	w := &costStats{}
	st.workers[n] = w
	return w
}

// readHeader returns the first CSV record of path, nil for an empty file.
func readHeader(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cr := csv.NewReader(bufio.NewReader(f))
	cr.FieldsPerRecord = -1
	h, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, nil
	}
	return h, err
}
