package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/trialcat/trialcat/internal/fakeai"
)

// fakeKey is the bearer key of the in-process fake; the coordinator gets it as OPENAI_API_KEY.
const fakeKey = "bench-key"

// sample is one request as the fake server saw it: when it arrived, how long the server took to
// answer it (the service time, including the drawn latency), its HTTP status and, when asked
// for, its prompt tokens counted the way fakeai counts them.
type sample struct {
	Start   time.Time
	Service time.Duration
	Status  int
	Tokens  int
}

// fake is fakeai served on a loopback port, with every request timed from outside the handler.
type fake struct {
	srv    *fakeai.Server
	http   *http.Server
	ln     net.Listener
	tokens bool // count prompt tokens per request (costs a second parse of each body)

	mu      sync.Mutex
	samples []sample
}

// startFake serves cfg on 127.0.0.1 until stop is called.
func startFake(cfg fakeai.Config, countTokens bool) (*fake, error) {
	cfg.APIKey = fakeKey
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	f := &fake{srv: fakeai.New(cfg), ln: ln, tokens: countTokens}
	f.http = &http.Server{Handler: http.HandlerFunc(f.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = f.http.Serve(ln) }()
	return f, nil
}

// URL is the base URL the coordinator's --base-url takes.
func (f *fake) URL() string { return "http://" + f.ln.Addr().String() + "/v1" }

func (f *fake) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = f.http.Shutdown(ctx)
}

func (f *fake) serve(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	tokens := 0
	if f.tokens {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		var req fakeai.ChatRequest
		if json.Unmarshal(body, &req) == nil {
			tokens = req.PromptTokens()
		}
	}
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	f.srv.ServeHTTP(sw, r)
	s := sample{Start: start, Service: time.Since(start), Status: sw.status, Tokens: tokens}
	f.mu.Lock()
	f.samples = append(f.samples, s)
	f.mu.Unlock()
}

// snapshot returns the samples so far in arrival order.
func (f *fake) snapshot() []sample {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := append([]sample(nil), f.samples...)
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Hijack lets fakeai drop connections through the wrapper.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("hijack not supported")
	}
	return hj.Hijack()
}

// serverStats sums what the fake saw over one run.
type serverStats struct {
	Requests      int            `json:"requests"`
	Answers       map[string]int `json:"answers"`
	Accepted      int            `json:"accepted"`
	Status429     int            `json:"status_429"`
	ServiceSumS   float64        `json:"service_sum_s"`   // Σ service time of 200 answers
	ServiceMeanMS float64        `json:"service_mean_ms"` // mean of the same
	ServiceP50MS  float64        `json:"service_p50_ms"`  // percentiles of the same
	ServiceP99MS  float64        `json:"service_p99_ms"`  //
	ServiceMaxMS  float64        `json:"service_max_ms"`  //
	PromptTokens  int64          `json:"prompt_tokens"`   // Σ over accepted requests (when counted)
	FirstAccepted time.Time      `json:"first_accepted"`  //
	LastAccepted  time.Time      `json:"last_accepted"`   //
	acceptedTimes []time.Time    `json:"-"`               // fakeai Stats().Accepted
	samples       []sample       `json:"-"`               //
}

func (f *fake) stats() serverStats {
	st := f.srv.Stats()
	ss := f.snapshot()
	out := serverStats{Requests: st.Requests, Answers: st.Answers, Accepted: len(st.Accepted),
		Status429: st.Answers[fakeai.Kind429], acceptedTimes: st.Accepted, samples: ss}
	var lat []float64
	for _, s := range ss {
		if s.Status == http.StatusOK {
			ms := float64(s.Service) / float64(time.Millisecond)
			lat = append(lat, ms)
			out.ServiceSumS += ms / 1000
		}
		if s.Status != http.StatusTooManyRequests {
			out.PromptTokens += int64(s.Tokens)
		}
	}
	if len(lat) > 0 {
		sort.Float64s(lat)
		out.ServiceMeanMS = out.ServiceSumS * 1000 / float64(len(lat))
		out.ServiceP50MS = lat[len(lat)/2]
		out.ServiceP99MS = lat[min(len(lat)-1, len(lat)*99/100)]
		out.ServiceMaxMS = lat[len(lat)-1]
	}
	if n := len(st.Accepted); n > 0 {
		out.FirstAccepted, out.LastAccepted = st.Accepted[0], st.Accepted[n-1]
	}
	return out
}
