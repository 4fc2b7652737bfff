package results

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Names of the bookkeeping columns every results row carries after the schema's columns, and of
// the columns of a failures row after its ID.
const (
	ColModel        = "model"
	ColInputTokens  = "input_tokens"
	ColOutputTokens = "output_tokens"
	ColCostUSD      = "cost_usd"
	ColAttempts     = "attempts"
	ColLatencyMS    = "latency_ms"
	ColWorker       = "worker"
	// ColCached is "true" for an answer taken from the response cache (no request, cost 0).
	ColCached = "cached"
	// ColCachedTokens counts the prompt tokens the provider served from its prompt cache.
	ColCachedTokens = "cached_tokens"
	// ColTurns counts an agent loop's requests (0: a one-shot answer); ColToolCalls its tool
	// calls by name, as "name=count" joined by ";" in the order of first use.
	ColTurns     = "turns"
	ColToolCalls = "tool_calls"
	// ColDecidedBy names the model whose answer a --cascade run kept; ColEscalated says why the
	// record went past the first model ("" when it did not).
	ColDecidedBy = "decided_by"
	ColEscalated = "escalated"
	// ColServiceTier is the service tier the answer was served on (flex, default, priority, or
	// batch for the Batch API; "" when the server named none, or no request was made).
	ColServiceTier = "service_tier"
	// ColSource says where an answer came from: SourceModel, SourceCache or SourceCarried ("" in
	// rows written before the column).
	ColSource = "source"

	ColErrorClass = "error_class"
	ColMessage    = "message"
)

// Bookkeeping lists the bookkeeping columns in file order.
func Bookkeeping() []string {
	return []string{ColModel, ColInputTokens, ColOutputTokens, ColCostUSD, ColAttempts, ColLatencyMS, ColWorker, ColCached,
		ColCachedTokens, ColTurns, ColToolCalls, ColSource, ColDecidedBy, ColEscalated, ColServiceTier}
}

// Sources of an answer (ColSource).
const (
	SourceModel = "model" // asked now
	SourceCache = "cache" // the response cache's (--cache)
	// SourceCarried is an earlier run's answer for a record whose content has not changed
	// since (--since-run): no request, cost 0.
	SourceCarried = "carried"
	// SourceReview is a person's correction (coordinator review import) in final_results.csv;
	// the worker files and results.jsonl keep the model's answer.
	SourceReview = "review"
)

// nBook is the number of bookkeeping columns.
const nBook = 15

// Layout is the column layout of a run's results and failures files: the only code that knows
// it. The worker encodes rows with it; merge, status, the coordinator's tally, the report and the
// benchmarks decode them with it.
type Layout struct {
	// IDColumn names the first column of both files.
	IDColumn string
	// Columns are the schema's columns, in the schema's order.
	Columns []string
}

// Header returns the results header: the ID column, the schema's columns, the bookkeeping columns.
func (l Layout) Header() []string {
	h := make([]string, 0, 1+len(l.Columns)+nBook)
	h = append(h, l.IDColumn)
	h = append(h, l.Columns...)
	return append(h, Bookkeeping()...)
}

// FailureHeader returns the failures header, whose first column is named like the results ID.
func (l Layout) FailureHeader() []string {
	return []string{l.IDColumn, ColErrorClass, ColMessage, ColAttempts, ColWorker}
}

// LayoutOf reads a layout back from a results header, checking its bookkeeping columns. A
// header written by an earlier version (without the columns added since) is read too.
func LayoutOf(header []string) (Layout, error) {
	l, _, err := layoutOf(header)
	return l, err
}

// layoutOf is LayoutOf and how many of the columns added since the header lacks.
func layoutOf(header []string) (Layout, int, error) {
	tail := Bookkeeping()
	for k := 0; k <= len(added); k++ {
		t := tail[:len(tail)-k]
		if len(header) >= 1+len(t) && slices.Equal(header[len(header)-len(t):], t) {
			return Layout{IDColumn: header[0], Columns: slices.Clone(header[1 : len(header)-len(t)])}, k, nil
		}
	}
	return Layout{}, 0, fmt.Errorf("results header %q does not end with %q", header, tail)
}

// Row is one answered record.
type Row struct {
	ID string
	// Values are the answer's cells, one per Layout.Columns.
	Values       []string
	Model        string
	InputTokens  int64
	OutputTokens int64
	// CostUSD is the record's cost; CostKnown is false when a model's price is unknown (the
	// cell is empty, never "0").
	CostUSD   float64
	CostKnown bool
	Attempts  int
	LatencyMS int64
	Worker    int
	// Cached says the answer came from the response cache.
	Cached bool
	// CachedTokens are the prompt tokens served from the provider's prompt cache.
	CachedTokens int64
	// Turns and ToolCalls describe an agent loop (0 and "" for a one-shot answer).
	Turns     int
	ToolCalls string
	// Source is where the answer came from (SourceModel, SourceCache, SourceCarried).
	Source string
	// DecidedBy and Escalated describe a --cascade run's record.
	DecidedBy, Escalated string
	// ServiceTier is the tier the answer was served on.
	ServiceTier string
}

// Encode returns r as cells in the layout's order.
func (l Layout) Encode(r Row) ([]string, error) {
	if len(r.Values) != len(l.Columns) {
		return nil, fmt.Errorf("row %s has %d values, the schema has %d columns", r.ID, len(r.Values), len(l.Columns))
	}
	cost := ""
	if r.CostKnown {
		cost = strconv.FormatFloat(r.CostUSD, 'f', 6, 64)
	}
	cells := make([]string, 0, 1+len(l.Columns)+nBook)
	cells = append(cells, r.ID)
	cells = append(cells, r.Values...)
	return append(cells, r.Model,
		strconv.FormatInt(r.InputTokens, 10),
		strconv.FormatInt(r.OutputTokens, 10),
		cost,
		strconv.Itoa(r.Attempts),
		strconv.FormatInt(r.LatencyMS, 10),
		strconv.Itoa(r.Worker),
		strconv.FormatBool(r.Cached),
		strconv.FormatInt(r.CachedTokens, 10),
		strconv.Itoa(r.Turns),
		r.ToolCalls,
		r.Source,
		r.DecidedBy,
		r.Escalated,
		r.ServiceTier), nil
}

// Decode reads cells written by Encode (or merged from such cells).
func (l Layout) Decode(cells []string) (Row, error) {
	n := len(l.Columns)
	if len(cells) != 1+n+nBook {
		return Row{}, fmt.Errorf("row has %d cells, the layout has %d", len(cells), 1+n+nBook)
	}
	b := cells[1+n:]
	r := Row{ID: cells[0], Values: cells[1 : 1+n], Model: b[0]}
	var err error
	num := func(col, s string, f func(string) error) {
		if err == nil {
			if e := f(s); e != nil {
				err = fmt.Errorf("row %s: column %s: %w", r.ID, col, e)
			}
		}
	}
	num(ColInputTokens, b[1], func(s string) (e error) { r.InputTokens, e = strconv.ParseInt(s, 10, 64); return })
	num(ColOutputTokens, b[2], func(s string) (e error) { r.OutputTokens, e = strconv.ParseInt(s, 10, 64); return })
	if b[3] != "" {
		num(ColCostUSD, b[3], func(s string) (e error) { r.CostUSD, e = strconv.ParseFloat(s, 64); return })
		r.CostKnown = true
	}
	num(ColAttempts, b[4], func(s string) (e error) { r.Attempts, e = strconv.Atoi(s); return })
	num(ColLatencyMS, b[5], func(s string) (e error) { r.LatencyMS, e = strconv.ParseInt(s, 10, 64); return })
	num(ColWorker, b[6], func(s string) (e error) { r.Worker, e = strconv.Atoi(s); return })
	num(ColCached, b[7], func(s string) (e error) { r.Cached, e = strconv.ParseBool(s); return })
	num(ColCachedTokens, b[8], func(s string) (e error) { r.CachedTokens, e = strconv.ParseInt(s, 10, 64); return })
	num(ColTurns, b[9], func(s string) (e error) { r.Turns, e = strconv.Atoi(s); return })
	r.ToolCalls, r.Source, r.DecidedBy, r.Escalated, r.ServiceTier = b[10], b[11], b[12], b[13], b[14]
	return r, err
}

// Failure is one record that failed for good (or, in final_failures.csv, was not done).
type Failure struct {
	ID       string
	Class    string
	Message  string
	Attempts int
	Worker   int
}

// EncodeFailure returns f as cells of the failures layout.
func EncodeFailure(f Failure) []string {
	return []string{f.ID, f.Class, f.Message, strconv.Itoa(f.Attempts), strconv.Itoa(f.Worker)}
}

// DecodeFailure reads cells written by EncodeFailure.
func DecodeFailure(cells []string) (Failure, error) {
	if len(cells) != 5 {
		return Failure{}, fmt.Errorf("failure row has %d cells, want 5", len(cells))
	}
	f := Failure{ID: cells[0], Class: cells[1], Message: cells[2]}
	var err error
	if f.Attempts, err = strconv.Atoi(cells[3]); err != nil {
		return f, fmt.Errorf("failure row %s: column %s: %w", f.ID, ColAttempts, err)
	}
	if f.Worker, err = strconv.Atoi(cells[4]); err != nil {
		return f, fmt.Errorf("failure row %s: column %s: %w", f.ID, ColWorker, err)
	}
	return f, nil
}

// RowID is the ID cell of a results or failures row: the first in both layouts.
func RowID(cells []string) string { return cells[0] }

// ReadRows streams the complete rows of a results file with this layout (see Read); a missing
// file has none. A header other than l's is an error.
func (l Layout) ReadRows(path string, fn func(Row) error) (torn bool, err error) {
	want := l.Header()
	legacy := false
	_, torn, err = read(path, func(header []string) error {
		if IsLegacy(header, want) {
			legacy = true // written by an earlier version: the columns added since get their defaults
			return nil
		}
		if !slices.Equal(header, want) {
			return mismatch(path, header, want)
		}
		return nil
	}, func(cells []string) error {
		if legacy {
			cells = Upgraded(cells, len(want))
		}
		v, err := l.Decode(cells)
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		return fn(v)
	})
	return torn, err
}

// ReadFailures streams the complete rows of a failures file (see Read); a missing file has none.
func (l Layout) ReadFailures(path string, fn func(Failure) error) (torn bool, err error) {
	return readAs(path, l.FailureHeader(), DecodeFailure, fn)
}

// readAs streams path's rows decoded by decode, after checking its header is want.
func readAs[T any](path string, want []string, decode func([]string) (T, error), fn func(T) error) (bool, error) {
	_, torn, err := read(path, func(header []string) error {
		if !slices.Equal(header, want) {
			return mismatch(path, header, want)
		}
		return nil
	}, func(cells []string) error {
		v, err := decode(cells)
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		return fn(v)
	})
	return torn, err
}

// ReadFile streams the rows of a results file whose layout is read from its own header (a run's
// final_results.csv read without its run.json). A header without the bookkeeping columns is an
// error.
func ReadFile(path string, fn func(Layout, Row) error) (torn bool, err error) {
	var l Layout
	missing := 0
	_, torn, err = read(path, func(h []string) error {
		var err error
		if l, missing, err = layoutOf(h); err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		return nil
	}, func(cells []string) error {
		if missing > 0 {
			cells = Upgraded(cells, len(cells)+missing)
		}
		r, err := l.Decode(cells)
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		return fn(l, r)
	})
	return torn, err
}

// ConfidenceColumn names the column of a field's confidence under --votes: the share of the
// record's votes that gave the kept value.
func ConfidenceColumn(field string) string { return field + confidenceSuffix }

const confidenceSuffix = "_confidence"

// Confidences are a row's --votes confidences by field (none when the layout has no confidence
// columns).
func (l Layout) Confidences(r Row) map[string]float64 {
	var out map[string]float64
	for i, c := range l.Columns {
		f, ok := strings.CutSuffix(c, confidenceSuffix)
		if !ok || i >= len(r.Values) {
			continue
		}
		if v, err := strconv.ParseFloat(r.Values[i], 64); err == nil {
			if out == nil {
				out = map[string]float64{}
			}
			out[f] = v
		}
	}
	return out
}

// FallbackCall is the entry of the tool_calls column that marks an agent record a limit sent to
// the one-shot prompt.
const FallbackCall = "fallback"

// FormatToolCalls spells an agent loop's calls for the tool_calls column: "name=count" joined by
// ";", by name, and "fallback=1" last when a limit sent the record to the one-shot prompt.
func FormatToolCalls(calls map[string]int, fallback bool) string {
	names := make([]string, 0, len(calls))
	for n := range calls {
		names = append(names, n)
	}
	slices.Sort(names)
	parts := make([]string, 0, len(names)+1)
	for _, n := range names {
		parts = append(parts, n+"="+strconv.Itoa(calls[n]))
	}
	if fallback {
		parts = append(parts, FallbackCall+"=1")
	}
	return strings.Join(parts, ";")
}

// ParseToolCalls reads a tool_calls cell back; fallback reports the fallback entry.
func ParseToolCalls(cell string) (calls map[string]int, fallback bool) {
	calls = map[string]int{}
	for _, part := range strings.Split(cell, ";") {
		name, n, ok := strings.Cut(part, "=")
		if !ok || name == "" {
			continue
		}
		k, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		if name == FallbackCall {
			fallback = true
			continue
		}
		calls[name] += k
	}
	return calls, fallback
}
