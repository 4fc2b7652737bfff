package llm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestRedact(t *testing.T) {
	tests := []struct {
		in      string
		secrets []string
		want    string
	}{
		{"key my-local-key was refused", []string{"my-local-key"}, "key [REDACTED] was refused"},
		{"Authorization: Bearer abc.def-123", nil, "Authorization: Bearer [REDACTED]"},
		{`header "bearer xyz"`, nil, `header "bearer [REDACTED]"`},
		{"Incorrect API key provided: sk-proj-AbCdEf0123456789.", nil, "Incorrect API key provided: sk-[REDACTED]."},
		{"nothing secret here", []string{""}, "nothing secret here"},
	}
	for _, tt := range tests {
		if got := Redact(tt.in, tt.secrets...); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestKeyNeverInErrors uses a server that echoes the key and the Authorization header back in
// its error message, the worst case.
func TestKeyNeverInErrors(t *testing.T) {
	const key = "local-server-key-without-sk-prefix"
	for _, status := range []int{400, 401, 403, 429, 500} {
		ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"error":{"message":"bad key %s (header %s)","type":"invalid_request_error"}}`,
				key, r.Header.Get("Authorization"))
		}))
		var log attemptLog
		c := &Caller{Provider: newProvider(ts, key, nil), MaxAttempts: 2, Sleep: (&sleepRecorder{}).Sleep, OnAttempt: log.On, FreeRetryFor: 20 * time.Millisecond}
		_, err := c.Call(context.Background(), Request{RecordID: "K", User: "Record ID: K", Model: "m"}, 0)
		if err == nil {
			t.Fatalf("status %d: want an error", status)
		}
		texts := []string{err.Error(), fmt.Sprintf("%v %+v %#v", err, err, err)}
		for _, a := range log.all() {
			texts = append(texts, a.Err.Error(), fmt.Sprintf("%+v", a))
		}
		for _, s := range texts {
			if strings.Contains(s, key) {
				t.Errorf("status %d: key in %q", status, s)
			}
			if !strings.Contains(s, "bad key") {
				continue
			}
			if !strings.Contains(s, Redacted) {
				t.Errorf("status %d: server message kept but not redacted: %q", status, s)
			}
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		ms, s string
		want  time.Duration
	}{
		{"1500", "", 1500 * time.Millisecond},
		{"250.5", "9", 250500 * time.Microsecond}, // ms wins
		{"", "3", 3 * time.Second},
		{"", "0.5", 500 * time.Millisecond},
		{"", now.Add(7 * time.Second).Format(http.TimeFormat), 7 * time.Second},
		{"", now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"soon", "later", 0},
		{"-5", "-1", 0},
		{"", "", 0},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.ms != "" {
			h.Set("retry-after-ms", tt.ms)
		}
		if tt.s != "" {
			h.Set("retry-after", tt.s)
		}
		if got := ParseRetryAfter(h, now); got != tt.want {
			t.Errorf("ParseRetryAfter(ms=%q, s=%q) = %s, want %s", tt.ms, tt.s, got, tt.want)
		}
	}
}

func TestClassify(t *testing.T) {
	own := &Error{Class: ClassTooLong, Message: "prompt too long"}
	tests := []struct {
		name string
		err  error
		want Class
	}{
		{"own error kept", fmt.Errorf("wrapped: %w", own), ClassTooLong},
		{"canceled", context.Canceled, ClassCanceled},
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), ClassTimeout},
		{"refused", &url.Error{Op: "Post", URL: "http://h/v1", Err: &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}}, ClassUnreachable},
		{"eof", &url.Error{Op: "Post", URL: "http://h/v1", Err: io.EOF}, ClassConnection},
		{"body cut", fmt.Errorf("error reading response body: %w", io.ErrUnexpectedEOF), ClassConnection},
		{"reset", syscall.ECONNRESET, ClassConnection},
		{"net timeout", &url.Error{Op: "Post", URL: "http://h", Err: timeoutErr{}}, ClassTimeout},
		{"setup error", errors.New("requestconfig: base url is not set"), ClassBadRequest},
	}
	for _, tt := range tests {
		if got := Classify(tt.err); got == nil || got.Class != tt.want {
			t.Errorf("%s: Classify = %v, want %s", tt.name, got, tt.want)
		}
	}
	if Classify(nil) != nil {
		t.Error("Classify(nil) != nil")
	}
	if !errors.Is(Classify(context.Canceled), context.Canceled) {
		t.Error("canceled class does not wrap context.Canceled")
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestClassifyHTTPStatus(t *testing.T) {
	tests := []struct {
		status    int
		body      string
		want      Class
		retryable bool
		fatal     bool
	}{
		{400, `{"error":{"message":"bad","type":"invalid_request_error"}}`, ClassBadRequest, false, false},
		{400, `{"error":{"message":"too long","code":"context_length_exceeded"}}`, ClassTooLong, false, false},
		{401, `{"error":{"message":"no","code":"invalid_api_key"}}`, ClassAuth, false, true},
		{403, `{}`, ClassAuth, false, true},
		{404, `{}`, ClassEndpointNotFound, true, false},
		{404, `{"error":{"message":"The model does not exist","code":"model_not_found"}}`, ClassBadRequest, false, false},
		{408, `{}`, ClassTimeout, true, false},
		{409, `{}`, ClassServerError, true, false},
		{413, `{}`, ClassTooLong, false, false},
		{422, `{}`, ClassBadRequest, false, false},
		{429, `{"error":{"message":"slow down","code":"rate_limit_exceeded"}}`, ClassRateLimited, true, false},
		{429, `{"error":{"message":"quota","type":"insufficient_quota"}}`, ClassInsufficientQuota, false, true},
		{429, `{"error":{"message":"quota","code":"insufficient_quota"}}`, ClassInsufficientQuota, false, true},
		{500, `{}`, ClassServerError, true, false},
		{502, `not json at all`, ClassServerError, true, false},
	}
	for _, tt := range tests {
		ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(tt.status)
			io.WriteString(w, tt.body)
		}))
		_, err := newProvider(ts, testKey, nil).Complete(context.Background(), Request{Model: "m", User: "u"})
		e := Classify(err)
		if e == nil || e.Class != tt.want || e.Status != tt.status || e.Retryable() != tt.retryable || e.Fatal() != tt.fatal {
			t.Errorf("HTTP %d %s: got %v (retryable %v fatal %v), want %s retryable %v fatal %v",
				tt.status, tt.body, err, e != nil && e.Retryable(), e != nil && e.Fatal(), tt.want, tt.retryable, tt.fatal)
		}
	}
}

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Base: 100 * time.Millisecond, Max: time.Second, MaxRetryAfter: 10 * time.Second}
	top := func() float64 { return 0.999999 }
	half := func() float64 { return 0.5 }
	tests := []struct {
		attempt int
		err     *Error
		rnd     func() float64
		want    time.Duration
	}{
		{1, nil, half, 50 * time.Millisecond},
		{2, nil, half, 100 * time.Millisecond},
		{3, nil, half, 200 * time.Millisecond},
		{10, nil, half, 500 * time.Millisecond},  // ceiling capped at Max
		{100, nil, half, 500 * time.Millisecond}, // no overflow
		{0, nil, half, 50 * time.Millisecond},    // treated as the first
		{1, nil, func() float64 { return 0 }, 0}, // full jitter reaches 0
		{1, &Error{RetryAfter: 3 * time.Second}, half, 3 * time.Second},
		{1, &Error{RetryAfter: time.Minute}, half, 10 * time.Second},              // capped
		{5, &Error{RetryAfter: time.Millisecond}, top, 999999 * time.Microsecond}, // backoff above retry-after
	}
	for _, tt := range tests {
		if got := b.Delay(tt.attempt, tt.err, tt.rnd); got != tt.want {
			t.Errorf("Delay(%d, %v) = %s, want %s", tt.attempt, tt.err, got, tt.want)
		}
	}
	// Defaults apply to a zero Backoff, and jitter stays under the ceiling.
	for range 100 {
		if d := (Backoff{}).Delay(1, nil, nil); d < 0 || d >= DefaultBackoffBase {
			t.Fatalf("zero Backoff Delay(1) = %s, want in [0, %s)", d, DefaultBackoffBase)
		}
	}
}

func TestRedactCatchesEveryFormOfTheKey(t *testing.T) {
	const key = "tk-Live-7f3a9c1e5b2d"
	for _, leak := range []string{
		key,
		"TK-LIVE-7F3A9C1E5B2D",           // another case
		"tk-Live-7f3a 9c1e5b2d",          // split by a space
		"tk-Live-7f3a\n9c1e5b2d",         // by a line break
		`tk-Live-7f3a\n9c1e5b2d`,         // by an escaped one
		"tk%2DLive%2D7f3a9c1e5b2d",       // percent-escaped
		`tk\u002dLive\u002d7f3a9c1e5b2d`, // JSON-escaped
	} {
		got := Redact("the server said: "+leak+" is wrong", key)
		if strings.Contains(strings.ToLower(got), "9c1e") || !strings.Contains(got, Redacted) {
			t.Errorf("Redact(%q) = %q; the key is still there", leak, got)
		}
	}
	if got := Redact("nothing secret here: tk-other", key); got != "nothing secret here: tk-other" {
		t.Errorf("Redact changed a text without the key: %q", got)
	}
}

// An https:// URL whose server speaks plain HTTP reached no API: it is unreachable (the worker
// stops within seconds), not a connection to retry for minutes.
func TestHTTPSAgainstPlainHTTPIsUnreachable(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer hs.Close()
	url := strings.Replace(hs.URL, "http://", "https://", 1) + "/v1"
	o := NewOpenAI(OpenAIConfig{BaseURL: url, APIKey: "k", SchemaName: "s", Schema: map[string]any{"type": "object"}})
	_, err := o.Complete(context.Background(), Request{RecordID: "x", Model: "gpt-5-mini", System: "s", User: "u"})
	var le *Error
	if !errors.As(err, &le) || le.Class != ClassUnreachable || !le.Free() {
		t.Fatalf("https against plain HTTP: %v; want class unreachable", err)
	}
}
