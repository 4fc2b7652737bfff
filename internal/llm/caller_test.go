package llm

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trialcat/trialcat/internal/fakeai"
)

func TestCallerFaultClasses(t *testing.T) {
	const id = "NCT00000042"
	tests := []struct {
		name      string
		cfg       fakeai.Config
		key       string // empty: testKey
		wantClass Class
		wantTries int // attempts made with MaxAttempts 3
		wantFatal bool
	}{
		{"rate limited", fakeai.Config{Rate429: 1}, "", ClassRateLimited, -1, false}, // free: not counted
		{"server error 500", fakeai.Config{Rate500: 1}, "", ClassServerError, 3, false},
		{"server error 503", fakeai.Config{Rate503: 1}, "", ClassServerError, 3, false},
		{"dropped connection", fakeai.Config{RateDrop: 1}, "", ClassConnection, 3, false},
		{"content not JSON", fakeai.Config{RateBadJSON: 1}, "", ClassInvalidJSON, 3, false},
		{"schema broken", fakeai.Config{RateSchemaBreak: 1}, "", ClassSchemaViolation, 3, false},
		{"refusal", fakeai.Config{RateRefusal: 1}, "", ClassRefusal, 3, false},
		{"truncated", fakeai.Config{RateLength: 1}, "", ClassTruncated, 3, false},
		{"bad request", fakeai.Config{FailIDs: map[string]int{id: 400}}, "", ClassBadRequest, 1, false},
		{"not found", fakeai.Config{FailIDs: map[string]int{id: 404}}, "", ClassEndpointNotFound, 3, false},
		{"unprocessable", fakeai.Config{FailIDs: map[string]int{id: 422}}, "", ClassBadRequest, 1, false},
		{"forbidden", fakeai.Config{FailIDs: map[string]int{id: 403}}, "", ClassAuth, 1, true},
		{"wrong key", fakeai.Config{}, "sk-wrong-key-9876543210", ClassAuth, 1, true},
		{"unauthorized", fakeai.Config{Unauthorized: true}, "", ClassAuth, 1, true},
		{"insufficient quota", fakeai.Config{InsufficientQuota: true}, "", ClassInsufficientQuota, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.APIKey = testKey
			key := testKey
			if tt.key != "" {
				key = tt.key
			}
			_, ts := startFake(t, tt.cfg)
			var sl sleepRecorder
			var log attemptLog
			c := &Caller{
				Provider:     newProvider(ts, key, nil),
				Validate:     validateTop(testSchema()),
				MaxAttempts:  3,
				Sleep:        sl.Sleep,
				OnAttempt:    log.On,
				FreeRetryFor: 100 * time.Millisecond,
			}
			req := Request{RecordID: id, User: "Record ID: " + id, Model: "gpt-4o-mini"}
			res, err := c.Call(context.Background(), req, 0)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want an *Error", err)
			}
			if e.Class != tt.wantClass || e.Fatal() != tt.wantFatal {
				t.Errorf("class = %s fatal = %v, want %s fatal = %v (%v)", e.Class, e.Fatal(), tt.wantClass, tt.wantFatal, err)
			}
			if tt.wantTries < 0 {
				// Not the record's fault: retried for FreeRetryFor, none of it counted.
				if res.Attempts != 0 || len(log.all()) <= 3 {
					t.Errorf("attempts = %d after %d tries; want 0 counted and more than MaxAttempts tried", res.Attempts, len(log.all()))
				}
			} else {
				if res.Attempts != tt.wantTries || len(log.all()) != tt.wantTries {
					t.Errorf("attempts = %d, OnAttempt calls = %d, want %d", res.Attempts, len(log.all()), tt.wantTries)
				}
				if len(sl.delays) != tt.wantTries-1 {
					t.Errorf("sleeps = %d, want %d (one between attempts)", len(sl.delays), tt.wantTries-1)
				}
			}
			for _, s := range []string{err.Error(), e.Message} {
				if strings.Contains(s, key) || strings.Contains(s, testKey) {
					t.Errorf("error text contains the API key: %q", s)
				}
			}
			for _, a := range log.all() {
				if a.Err == nil || a.Err.Class != tt.wantClass {
					t.Errorf("attempt %d err = %v, want class %s", a.Attempt, a.Err, tt.wantClass)
				}
			}
		})
	}
}

// flaky answers 503 to its first n requests, then passes them on.
type flaky struct {
	n    int32
	seen atomic.Int32
	next http.Handler
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.seen.Add(1) <= f.n {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error":{"message":"overloaded","type":"server_error"}}`))
		return
	}
	f.next.ServeHTTP(w, r)
}

func TestCallerRetriesThenSucceeds(t *testing.T) {
	ts := startServer(t, &flaky{n: 2, next: fakeai.New(fakeai.Config{APIKey: testKey})})
	var sl sleepRecorder
	var log attemptLog
	c := &Caller{
		Provider:    newProvider(ts, testKey, nil),
		Validate:    validateTop(testSchema()),
		MaxAttempts: 5,
		Backoff:     Backoff{Base: time.Second, Max: 10 * time.Second},
		Sleep:       sl.Sleep,
		Rand:        func() float64 { return 0.5 },
		OnAttempt:   log.On,
	}
	res, err := c.Call(context.Background(), Request{RecordID: "A", User: "Record ID: A", Model: "gpt-4o-mini"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Attempts != 3 || res.Values["category"] == nil {
		t.Errorf("result = %+v, want success on attempt 3", res)
	}
	want := []time.Duration{500 * time.Millisecond, time.Second} // half of 1s, 2s
	if len(sl.delays) != 2 || sl.delays[0] != want[0] || sl.delays[1] != want[1] {
		t.Errorf("delays = %v, want %v", sl.delays, want)
	}
	atts := log.all()
	if len(atts) != 3 || atts[0].Err.Class != ClassServerError || atts[0].Delay != want[0] || atts[2].Err != nil {
		t.Errorf("attempts = %+v, want two server errors then success", atts)
	}
}

func TestCallerSumsUsageOverAttempts(t *testing.T) {
	// Schema breaks are billed, so the failed attempts count toward usage.
	_, ts := startFake(t, fakeai.Config{APIKey: testKey, RateSchemaBreak: 1})
	var log attemptLog
	c := &Caller{Provider: newProvider(ts, testKey, nil), Validate: validateTop(testSchema()),
		MaxAttempts: 3, Sleep: (&sleepRecorder{}).Sleep, OnAttempt: log.On}
	res, err := c.Call(context.Background(), Request{RecordID: "U", User: "Record ID: U", Model: "gpt-4o-mini"}, 0)
	if err == nil {
		t.Fatal("want an error")
	}
	var sum Usage
	for _, a := range log.all() {
		sum = sum.Add(a.Usage)
	}
	if res.Usage != sum || sum.InputTokens == 0 || res.Usage.InputTokens != 3*log.all()[0].Usage.InputTokens {
		t.Errorf("result usage = %+v, attempts sum = %+v, want the sum of 3 billed attempts", res.Usage, sum)
	}
}

func TestCallerHonoursRetryAfter(t *testing.T) {
	tests := []struct {
		name       string
		retryAfter time.Duration
		maxRA      time.Duration
		want       time.Duration
	}{
		{"server wait above backoff", 1500 * time.Millisecond, 0, 1500 * time.Millisecond},
		{"capped by MaxRetryAfter", 90 * time.Second, 5 * time.Second, 5 * time.Second},
		{"default cap 60s", 5 * time.Minute, 0, 60 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ts := startFake(t, fakeai.Config{APIKey: testKey, Rate429: 1, RetryAfter: tt.retryAfter})
			var sl sleepRecorder
			c := &Caller{
				Provider:     newProvider(ts, testKey, nil),
				MaxAttempts:  3,
				Backoff:      Backoff{Base: time.Millisecond, Max: 2 * time.Millisecond, MaxRetryAfter: tt.maxRA},
				Sleep:        sl.Sleep,
				FreeRetryFor: 50 * time.Millisecond, // 429s do not count: bounded by time
			}
			_, err := c.Call(context.Background(), Request{RecordID: "R", User: "Record ID: R", Model: "gpt-4o-mini"}, 0)
			var e *Error
			if !errors.As(err, &e) || e.Class != ClassRateLimited || e.RetryAfter != tt.retryAfter {
				t.Fatalf("err = %v, want rate_limited with retry-after %s", err, tt.retryAfter)
			}
			if len(sl.delays) < 2 {
				t.Fatalf("delays = %v, want at least 2", sl.delays)
			}
			for _, d := range sl.delays {
				if d != tt.want {
					t.Errorf("delay = %s, want %s", d, tt.want)
				}
			}
		})
	}
}

func TestCallerMaxAttemptsCountsPrior(t *testing.T) {
	tests := []struct {
		prior, max    int
		wantRequests  int
		wantAttempts  int
		wantExhausted bool
	}{
		{prior: 0, max: 4, wantRequests: 4, wantAttempts: 4},
		{prior: 2, max: 4, wantRequests: 2, wantAttempts: 4},
		{prior: 3, max: 4, wantRequests: 1, wantAttempts: 4},
		{prior: 4, max: 4, wantRequests: 0, wantAttempts: 4, wantExhausted: true},
		{prior: 0, max: 0, wantRequests: 1, wantAttempts: 1}, // below 1 means 1
	}
	for _, tt := range tests {
		fake, ts := startFake(t, fakeai.Config{APIKey: testKey, Rate500: 1})
		c := &Caller{Provider: newProvider(ts, testKey, nil), MaxAttempts: tt.max, Sleep: (&sleepRecorder{}).Sleep}
		res, err := c.Call(context.Background(), Request{RecordID: "M", User: "Record ID: M", Model: "gpt-4o-mini"}, tt.prior)
		if err == nil {
			t.Fatalf("prior %d max %d: want an error", tt.prior, tt.max)
		}
		if got := fake.Stats().PerID["M"]; got != tt.wantRequests {
			t.Errorf("prior %d max %d: requests = %d, want %d", tt.prior, tt.max, got, tt.wantRequests)
		}
		if res.Attempts != tt.wantAttempts {
			t.Errorf("prior %d max %d: Attempts = %d, want %d", tt.prior, tt.max, res.Attempts, tt.wantAttempts)
		}
		if errors.Is(err, ErrAttemptsExhausted) != tt.wantExhausted {
			t.Errorf("prior %d max %d: err = %v, exhausted want %v", tt.prior, tt.max, err, tt.wantExhausted)
		}
	}
}

func TestCallerPerAttemptTimeout(t *testing.T) {
	tests := []struct {
		name   string
		caller time.Duration // Caller.Timeout
		sdk    time.Duration // OpenAIConfig.Timeout
	}{
		{"caller timeout", 100 * time.Millisecond, 0},
		{"provider timeout", 0, 100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake, ts := startFake(t, fakeai.Config{APIKey: testKey, RateStall: 1, StallFor: 10 * time.Second})
			p := newProvider(ts, testKey, func(c *OpenAIConfig) { c.Timeout = tt.sdk })
			var log attemptLog
			c := &Caller{Provider: p, MaxAttempts: 2, Timeout: tt.caller, Sleep: (&sleepRecorder{}).Sleep, OnAttempt: log.On}
			_, err := c.Call(context.Background(), Request{RecordID: "S", User: "Record ID: S", Model: "gpt-4o-mini"}, 0)
			var e *Error
			if !errors.As(err, &e) || e.Class != ClassTimeout {
				t.Fatalf("err = %v, want class timeout", err)
			}
			if len(log.all()) != 2 || fake.Stats().Answers[fakeai.KindStall] != 2 {
				t.Errorf("attempts = %d, stalls = %d, want each attempt timed out on its own (2)", len(log.all()), fake.Stats().Answers[fakeai.KindStall])
			}
		})
	}
}

func TestCallerParentCancel(t *testing.T) {
	_, ts := startFake(t, fakeai.Config{APIKey: testKey, RateStall: 1, StallFor: 10 * time.Second})
	ctx, cancel := context.WithCancelCause(context.Background())
	stop := errors.New("operator stopped the run")
	var log attemptLog
	c := &Caller{
		Provider:    newProvider(ts, testKey, nil),
		MaxAttempts: 5,
		Timeout:     5 * time.Second,
		OnAttempt: func(a Attempt) {
			log.On(a)
		},
		BeforeAttempt: func(context.Context, string, int) error {
			time.AfterFunc(50*time.Millisecond, func() { cancel(stop) })
			return nil
		},
	}
	_, err := c.Call(ctx, Request{RecordID: "C", User: "Record ID: C", Model: "gpt-4o-mini"}, 0)
	var e *Error
	if !errors.As(err, &e) || e.Class != ClassCanceled || e.Retryable() {
		t.Fatalf("err = %v, want class canceled, not retryable", err)
	}
	if !errors.Is(err, stop) {
		t.Errorf("err = %v, want it to wrap the cancel cause", err)
	}
	if n := len(log.all()); n != 1 {
		t.Errorf("attempts = %d, want 1 (no retry after cancel)", n)
	}
}

func TestCallerBeforeAttemptAborts(t *testing.T) {
	fake, ts := startFake(t, fakeai.Config{APIKey: testKey, Rate500: 1})
	budget := errors.New("budget reached")
	var seen []int
	c := &Caller{
		Provider:    newProvider(ts, testKey, nil),
		MaxAttempts: 5,
		Sleep:       (&sleepRecorder{}).Sleep,
		BeforeAttempt: func(_ context.Context, id string, n int) error {
			seen = append(seen, n)
			if n == 3 {
				return budget
			}
			return nil
		},
	}
	res, err := c.Call(context.Background(), Request{RecordID: "B", User: "Record ID: B", Model: "gpt-4o-mini"}, 1)
	if !errors.Is(err, budget) {
		t.Fatalf("err = %v, want the BeforeAttempt error", err)
	}
	if len(seen) != 2 || seen[0] != 2 || seen[1] != 3 {
		t.Errorf("BeforeAttempt saw attempts %v, want [2 3] (numbering counts prior attempts)", seen)
	}
	if res.Attempts != 2 || fake.Stats().PerID["B"] != 1 {
		t.Errorf("Attempts = %d, requests = %d, want 2 and 1", res.Attempts, fake.Stats().PerID["B"])
	}
}

func TestCallerConnectionRefused(t *testing.T) {
	ts := startServer(t, http.NotFoundHandler())
	p := newProvider(ts, testKey, nil)
	ts.Close()
	tries := 0
	c := &Caller{Provider: p, MaxAttempts: 2, Sleep: (&sleepRecorder{}).Sleep, FreeRetryFor: 200 * time.Millisecond,
		OnAttempt: func(Attempt) { tries++ }}
	res, err := c.Call(context.Background(), Request{RecordID: "X", User: "Record ID: X", Model: "gpt-4o-mini"}, 1)
	var e *Error
	// A server that cannot be reached is not the record's fault: tried again and again for
	// MaxUnreachable without using up its attempts, then given up as unreachable.
	if !errors.As(err, &e) || e.Class != ClassUnreachable || res.Attempts != 1 || tries <= 2 {
		t.Fatalf("err = %v attempts = %d tries = %d; want unreachable, still 1 attempt (the prior one), more than 2 tries", err, res.Attempts, tries)
	}
}

func TestCallerValidateWithoutSchema(t *testing.T) {
	tests := []struct {
		content   string
		wantClass Class // "" for success
	}{
		{`{"a":1}`, ""},
		{`not json`, ClassInvalidJSON},
		{``, ClassInvalidJSON},
		{`[1,2]`, ClassSchemaViolation},
		{`null`, ClassSchemaViolation},
	}
	for _, tt := range tests {
		p := ProviderFunc(func(context.Context, Request) (Reply, error) { return Reply{Content: tt.content}, nil })
		c := &Caller{Provider: p, MaxAttempts: 1}
		_, err := c.Call(context.Background(), Request{RecordID: "V"}, 0)
		var e *Error
		errors.As(err, &e)
		switch {
		case tt.wantClass == "" && err != nil:
			t.Errorf("%q: err = %v, want success", tt.content, err)
		case tt.wantClass != "" && (e == nil || e.Class != tt.wantClass):
			t.Errorf("%q: err = %v, want class %s", tt.content, err, tt.wantClass)
		}
	}
}

func TestCallEscalatesAfterInvalidAnswers(t *testing.T) {
	var models []string
	p := ProviderFunc(func(ctx context.Context, req Request) (Reply, error) {
		models = append(models, req.Model)
		if req.Model == "big" {
			return Reply{Content: `{"ok":true}`, Model: "big-2025", Usage: Usage{InputTokens: 10, OutputTokens: 2}}, nil
		}
		return Reply{Content: `not json`, Model: "small", Usage: Usage{InputTokens: 5, OutputTokens: 1}}, nil
	})
	c := &Caller{Provider: p, MaxAttempts: 5, EscalateModel: "big", Sleep: func(context.Context, time.Duration) error { return nil }}
	res, err := c.Call(context.Background(), Request{RecordID: "A", Model: "small"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"small", "small", "big"}; !slices.Equal(models, want) {
		t.Errorf("models asked = %v, want %v", models, want)
	}
	if res.Model != "big-2025" || res.Attempts != 3 {
		t.Errorf("result model %q attempts %d", res.Model, res.Attempts)
	}
	if res.Billed[Charge{Model: "small"}].InputTokens != 10 || res.Billed[Charge{Model: "big-2025"}].InputTokens != 10 {
		t.Errorf("usage by model = %+v", res.Billed)
	}
}
