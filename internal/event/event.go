package event

import (
	"encoding/json"
	"io"
	"sync"
)

// Types of events.
const (
	Start  = "start"  // the worker read its batch: Pending records to do, Done already done
	Record = "record" // a record was answered (OK) or failed for good
	Retry  = "retry"  // an attempt failed and will be retried
	Fatal  = "fatal"  // the API refused the run (bad key, no quota); the worker is stopping
	End    = "end"    // the worker finished its batch
)

// Event is one line of the protocol. Fields not used by a type are omitted.
type Event struct {
	Type         string  `json:"type"`
	Worker       int     `json:"worker"`
	ID           string  `json:"id,omitempty"`
	OK           bool    `json:"ok,omitempty"`
	Class        string  `json:"class,omitempty"`
	Message      string  `json:"message,omitempty"`
	Status       int     `json:"status,omitempty"`
	Attempt      int     `json:"attempt,omitempty"`
	Attempts     int     `json:"attempts,omitempty"`
	Model        string  `json:"model,omitempty"`
	InputTokens  int64   `json:"input_tokens,omitempty"`
	CachedTokens int64   `json:"cached_tokens,omitempty"`
	OutputTokens int64   `json:"output_tokens,omitempty"`
	CostUSD      float64 `json:"cost_usd,omitempty"`
	CostUnknown  bool    `json:"cost_unknown,omitempty"`
	LatencyMS    int64   `json:"latency_ms,omitempty"`
	DelayMS      int64   `json:"delay_ms,omitempty"`
	Pending      int64   `json:"pending,omitempty"`
	Done         int64   `json:"done,omitempty"`
	// MaxRSSKB is the worker's peak resident set size (end events).
	MaxRSSKB int64 `json:"max_rss_kb,omitempty"`
}

// Emitter writes events as JSON lines; safe for concurrent use. A nil *Emitter discards.
type Emitter struct {
	mu  sync.Mutex
	enc *json.Encoder
}

// NewEmitter writes to w, or discards when w is nil.
func NewEmitter(w io.Writer) *Emitter {
	if w == nil {
		return nil
	}
	return &Emitter{enc: json.NewEncoder(w)}
}

// Emit writes one event. Errors are ignored: a coordinator that has gone away is noticed through
// stdin, and events are never the record of truth (the results files are).
func (e *Emitter) Emit(ev Event) {
	if e == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	_ = e.enc.Encode(ev)
}

// Parse decodes one event line.
func Parse(line []byte) (Event, error) {
	var ev Event
	err := json.Unmarshal(line, &ev)
	return ev, err
}
