package llm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/trialcat/trialcat/internal/fakeai"
	"github.com/trialcat/trialcat/internal/record"
)

const testKey = "sk-test-0123456789abcdefSECRET"

// testSchema is a strict schema like the ones the tool sends.
func testSchema() map[string]any {
	return map[string]any{
		"type":                 "object",
		"additionalProperties": false,
		"properties": map[string]any{
			"category":     map[string]any{"type": "string", "enum": []any{"oncology", "cardiology", "neurology", "infectious_disease", "other"}},
			"confidence":   map[string]any{"type": "number"},
			"rationale":    map[string]any{"type": "string"},
			"is_pediatric": map[string]any{"type": "boolean"},
			"tags":         map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
		},
		"required": []any{"category", "confidence", "rationale", "is_pediatric", "tags"},
	}
}

// validateTop is a small stand-in for the schema package: required keys, no extra keys, and enum
// membership of top-level properties.
func validateTop(schema map[string]any) func([]byte) (map[string]any, error) {
	return func(content []byte) (map[string]any, error) {
		var m map[string]any
		if err := json.Unmarshal(content, &m); err != nil {
			return nil, err
		}
		props := schema["properties"].(map[string]any)
		for _, r := range schema["required"].([]any) {
			if _, ok := m[r.(string)]; !ok {
				return nil, fmt.Errorf("missing required property %q", r)
			}
		}
		for k, v := range m {
			p, ok := props[k].(map[string]any)
			if !ok {
				return nil, fmt.Errorf("unexpected property %q", k)
			}
			if enum, ok := p["enum"].([]any); ok && !slices.Contains(enum, v) {
				return nil, fmt.Errorf("property %q: %v is not one of %v", k, v, enum)
			}
		}
		return m, nil
	}
}

// realRequests reads the first n records of the sample data as requests.
func realRequests(tb testing.TB, n int, model string) []Request {
	tb.Helper()
	f, err := os.Open("../../testdata/trials.jsonl")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	var out []Request
	for sc.Scan() && len(out) < n {
		line := bytes.Clone(sc.Bytes())
		m, err := record.Decode(line)
		if err != nil {
			tb.Fatal(err)
		}
		id := record.IDOf(m, "")
		title, _ := record.Lookup(m, "protocolSection.identificationModule.briefTitle")
		out = append(out, Request{
			RecordID: id,
			Record:   line,
			System:   "You categorize clinical trials. Answer with JSON only.",
			User:     fmt.Sprintf("Record ID: %s\nTitle: %v\n", id, title),
			Model:    model,
		})
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

// capture records request bodies on their way to the fake.
type capture struct {
	mu     sync.Mutex
	bodies []map[string]any
	next   http.Handler
}

func (c *capture) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	c.mu.Lock()
	c.bodies = append(c.bodies, m)
	c.mu.Unlock()
	r.Body = io.NopCloser(bytes.NewReader(b))
	c.next.ServeHTTP(w, r)
}

func (c *capture) last(tb testing.TB) map[string]any {
	tb.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.bodies) == 0 {
		tb.Fatal("no request captured")
	}
	return c.bodies[len(c.bodies)-1]
}

// startFake serves a fakeai server in process.
func startFake(tb testing.TB, cfg fakeai.Config) (*fakeai.Server, *httptest.Server) {
	tb.Helper()
	fake := fakeai.New(cfg)
	ts := httptest.NewServer(fake)
	tb.Cleanup(ts.Close)
	return fake, ts
}

func newProvider(ts *httptest.Server, key string, mod func(*OpenAIConfig)) *OpenAI {
	cfg := OpenAIConfig{
		BaseURL:    ts.URL + "/v1",
		APIKey:     key,
		SchemaName: "trial_category",
		Schema:     testSchema(),
		HTTPClient: ts.Client(),
	}
	if mod != nil {
		mod(&cfg)
	}
	return NewOpenAI(cfg)
}

// sleepRecorder is a Sleep that records delays and returns at once.
type sleepRecorder struct {
	mu     sync.Mutex
	delays []time.Duration
}

func (s *sleepRecorder) Sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.delays = append(s.delays, d)
	s.mu.Unlock()
	return ctx.Err()
}

// attemptLog collects OnAttempt calls.
type attemptLog struct {
	mu       sync.Mutex
	attempts []Attempt
}

func (l *attemptLog) On(a Attempt) {
	l.mu.Lock()
	l.attempts = append(l.attempts, a)
	l.mu.Unlock()
}

func (l *attemptLog) all() []Attempt {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.attempts)
}

func startServer(tb testing.TB, h http.Handler) *httptest.Server {
	tb.Helper()
	ts := httptest.NewServer(h)
	tb.Cleanup(ts.Close)
	return ts
}
