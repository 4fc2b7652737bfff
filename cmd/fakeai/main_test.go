package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/trialcat/trialcat/internal/exitcode"
	"github.com/trialcat/trialcat/internal/fakeai"
	"github.com/trialcat/trialcat/internal/testkit"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestServeThenPrintStats(t *testing.T) {
	var out testkit.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- newApp(&out, env(map[string]string{"FAKEAI_API_KEY": "k-123"})).RunContext(ctx,
			[]string{"fakeai", "--fail-id", "NCT2=400", "--rpm", "100"})
	}()

	var base string
	for deadline := time.Now().Add(5 * time.Second); base == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if line, _, ok := strings.Cut(out.String(), "\n"); ok {
			base, _ = strings.CutPrefix(line, "listening on ")
		}
	}
	if !strings.HasPrefix(base, "http://127.0.0.1:") || !strings.HasSuffix(base, "/v1") {
		t.Fatalf("first line = %q, want listening on http://127.0.0.1:PORT/v1", out.String())
	}
	for _, tc := range []struct {
		id, key string
		want    int
	}{{"NCT1", "k-123", 200}, {"NCT2", "k-123", 400}, {"NCT1", "test-key", 401}} {
		body := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Record ID: ` + tc.id + `"}],` +
			`"response_format":{"type":"json_schema","json_schema":{"name":"a","strict":true,"schema":{"type":"object","properties":{"c":{"type":"string"}},"required":["c"],"additionalProperties":false}}}}`
		req, _ := http.NewRequest(http.MethodPost, base+"/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tc.key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s with key %s: HTTP %d, want %d", tc.id, tc.key, resp.StatusCode, tc.want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	_, statsJSON, _ := strings.Cut(out.String(), "\n")
	var st fakeai.Stats
	if err := json.Unmarshal([]byte(statsJSON), &st); err != nil {
		t.Fatalf("stats not JSON: %v: %q", err, statsJSON)
	}
	if st.Requests != 3 || st.Answers["ok"] != 1 || st.Answers["400"] != 1 || st.Answers["401"] != 1 || st.PerID["NCT1"] != 1 {
		t.Errorf("stats = %+v, want 3 requests: ok, 400, 401", st)
	}
}

func TestUsageErrors(t *testing.T) {
	tests := [][]string{
		{"--rate-500", "1.5"},
		{"--rate-500", "0.6", "--rate-503", "0.6"},
		{"--rate-500", "abc"},
		{"--fail-id", "NCT1"},
		{"--fail-id", "NCT1=200"},
		{"--rpm", "-1"},
		{"--no-such-flag"},
		{"extra-arg"},
	}
	for _, args := range tests {
		var out testkit.Buffer
		err := newApp(&out, env(nil)).RunContext(context.Background(), append([]string{"fakeai"}, args...))
		if !errors.Is(err, exitcode.ErrUsage) {
			t.Errorf("%v: err = %v, want a usage error", args, err)
		}
	}
}
