package fakeai

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/trialcat/trialcat/internal/wait"
)

// Answer kinds counted in Stats.Answers.
const (
	KindOK          = "ok"
	Kind429         = "429"
	Kind500         = "500"
	Kind503         = "503"
	KindDrop        = "drop"
	KindStall       = "stall"
	KindBadJSON     = "bad_json"
	KindSchemaBreak = "schema_break"
	KindRefusal     = "refusal"
	KindLength      = "length"
	Kind401         = "401"
	Kind400         = "400"
	KindQuota       = "quota"
	// KindFlexUnavailable is a service_tier flex request refused for want of capacity.
	KindFlexUnavailable = "flex_unavailable"
)

// Config sets the server's behaviour. The zero value answers every request correctly and
// accepts any bearer token only if APIKey is empty.
type Config struct {
	// APIKey is the bearer token required; a wrong or missing one gets 401 invalid_api_key.
	APIKey string

	// Fault rates in [0,1]. One uniform draw per request from a generator seeded with Seed picks
	// at most one fault, so the rates are disjoint shares of the traffic (keep their sum <= 1).
	Seed            int64
	Rate429         float64
	Rate500         float64
	Rate503         float64
	RateDrop        float64 // close the connection without an answer
	RateStall       float64 // sleep StallFor, then answer normally
	RateBadJSON     float64 // content that is not JSON
	RateSchemaBreak float64 // JSON missing a required field or with a bad enum value
	RateRefusal     float64 // message.refusal set, content null
	RateLength      float64 // content cut short, finish_reason "length"

	// StallFor is the stall of a RateStall request.
	StallFor time.Duration
	// RetryAfter, when above 0, is sent on random 429s as retry-after-ms and retry-after.
	RetryAfter time.Duration

	// FailIDs maps a record ID to the HTTP status always answered for it (e.g. 400).
	FailIDs map[string]int
	// InsufficientQuota answers every request 429 insufficient_quota.
	InsufficientQuota bool
	// Unauthorized answers every request 401, whatever the key.
	Unauthorized bool

	// RPM and TPM, when above 0, limit accepted requests and prompt tokens over a sliding 60s
	// window. Over a limit the answer is 429 with x-ratelimit-* headers and retry-after-ms.
	RPM, TPM int

	// Latency delays every answer.
	Latency LatencyModel

	// Answer, when set, builds the answer for a record; else DefaultAnswer on the request's
	// schema.
	Answer func(recordID string, req ChatRequest) map[string]any

	// Now is the clock of the rate-limit window, of Stats.Accepted and of the Batch API's
	// lifecycle; nil means time.Now.
	Now func() time.Time

	// Batch sets the Batch API's timing and faults.
	Batch BatchConfig

	// Agent sets how requests that offer tools are answered.
	Agent AgentConfig

	// Noise is the probability that each enum field of an answer is another of its values,
	// drawn per request: a model whose answers to the same record vary (votes disagree). The
	// answer without noise is the truth.
	Noise float64
	// ModelNoise sets Noise per model (a weak model errs more than a strong one); a model not
	// in it has Noise.
	ModelNoise map[string]float64

	// PromptCache reports cached prompt tokens as the provider does (see cache.go): a prefix of
	// 1,024 tokens or more, in 128-token steps, of a request answered before with the same model.
	PromptCache bool
	// FlexUnavailable is the share of service_tier "flex" requests refused with 429 "Resource
	// Unavailable" (drawn per request), as the flex tier does when it lacks capacity.
	FlexUnavailable float64
}

// LatencyModel is the delay of an answer: (Base + PerPromptToken*promptTokens) times a
// lognormal multiplier exp(Sigma*N(0,1)) with a heavy right tail.
type LatencyModel struct {
	Base           time.Duration
	PerPromptToken time.Duration
	// Sigma is the lognormal sigma of the jitter; 0 means no jitter.
	Sigma float64
	// PerRecord draws the jitter from the record's ID and how many times it was asked (with
	// Config.Seed) instead of from the order of arrival: two runs over the same records see
	// the same latency for each first request, and a repeat (a retry, a hedged copy) draws
	// anew. Benchmarks that compare runs use it.
	PerRecord bool
}

// Stats counts what the server saw and answered.
type Stats struct {
	// Requests counts every request received.
	Requests int `json:"requests"`
	// PerID counts authenticated, well-formed requests per record ID.
	PerID map[string]int `json:"per_id"`
	// Answers counts answers by kind (Kind* constants; other FailIDs statuses by number). Each
	// request on the chat path counts under exactly one kind: a stalled one as stall, not ok.
	Answers map[string]int `json:"answers"`
	// Accepted holds the times requests passed the rate limiter, in order.
	Accepted []time.Time `json:"accepted"`
	// PromptTokens and CompletionTokens sum the usage of every completion answered (status 200).
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	// ToolCalls counts the tool calls answered, by tool name.
	ToolCalls map[string]int `json:"tool_calls"`
	// PerModel counts authenticated, well-formed requests by model.
	PerModel map[string]int `json:"per_model"`
	// CachedTokens sums the cached_tokens of every completion answered.
	CachedTokens int64 `json:"cached_tokens"`
	// ServiceTiers, CacheKeys and CacheRetentions count well-formed requests by the
	// service_tier, prompt_cache_key and prompt_cache_retention they were sent with ("" for
	// none).
	ServiceTiers    map[string]int `json:"service_tiers"`
	CacheKeys       map[string]int `json:"cache_keys"`
	CacheRetentions map[string]int `json:"cache_retentions"`
}

// Server is the fake. It is an http.Handler safe for concurrent use.
type Server struct {
	cfg Config
	now func() time.Time

	batchOnce sync.Once
	batch     *batchAPI

	mu     sync.Mutex
	rng    *rand.Rand
	seq    int64
	stats  Stats
	window []admitted // accepted requests of the last 60s, oldest first
	cache  promptCache
}

type admitted struct {
	at     time.Time
	tokens int
}

const window = 60 * time.Second

// New returns a server for cfg.
func New(cfg Config) *Server {
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Server{
		cfg: cfg,
		now: now,
		rng: rand.New(rand.NewPCG(uint64(cfg.Seed), 0x5eed)),
		stats: Stats{PerID: map[string]int{}, Answers: map[string]int{}, ToolCalls: map[string]int{}, PerModel: map[string]int{},
			ServiceTiers: map[string]int{}, CacheKeys: map[string]int{}, CacheRetentions: map[string]int{}},
	}
}

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{
		Requests:         s.stats.Requests,
		PerID:            maps.Clone(s.stats.PerID),
		Answers:          maps.Clone(s.stats.Answers),
		Accepted:         append([]time.Time(nil), s.stats.Accepted...),
		PromptTokens:     s.stats.PromptTokens,
		CompletionTokens: s.stats.CompletionTokens,
		CachedTokens:     s.stats.CachedTokens,
		ToolCalls:        maps.Clone(s.stats.ToolCalls),
		PerModel:         maps.Clone(s.stats.PerModel),
		ServiceTiers:     maps.Clone(s.stats.ServiceTiers),
		CacheKeys:        maps.Clone(s.stats.CacheKeys),
		CacheRetentions:  maps.Clone(s.stats.CacheRetentions),
	}
}

func (s *Server) count(kind string) {
	s.mu.Lock()
	s.stats.Answers[kind]++
	s.mu.Unlock()
}

// ServeHTTP serves POST /v1/chat/completions and /chat/completions, and the Batch API:
// /v1/files (upload, retrieve, content) and /v1/batches (create, retrieve, list, cancel).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.serveBatchAPI(w, r) {
		return
	}
	s.serveChat(w, r)
}

func (s *Server) serveChat(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.stats.Requests++
	s.mu.Unlock()

	if r.URL.Path != "/v1/chat/completions" && r.URL.Path != "/chat/completions" {
		writeError(w, http.StatusNotFound, "Invalid URL ("+r.Method+" "+r.URL.Path+")", "invalid_request_error", "", "")
		return
	}
	if r.Method != http.MethodPost {
		writeError(w, http.StatusMethodNotAllowed, "Method not allowed", "invalid_request_error", "", "")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		return // the client went away
	}

	key, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if s.cfg.Unauthorized || (s.cfg.APIKey != "" && subtle.ConstantTimeCompare([]byte(key), []byte(s.cfg.APIKey)) != 1) {
		s.count(Kind401)
		// Worst case on purpose: the key is echoed in full, so clients must redact it.
		writeError(w, http.StatusUnauthorized, "Incorrect API key provided: "+key+".", "invalid_request_error", "", "invalid_api_key")
		return
	}

	req, param, err := parseRequest(body)
	if err != nil {
		s.count(Kind400)
		writeError(w, http.StatusBadRequest, err.Error(), "invalid_request_error", param, "")
		return
	}
	id := req.RecordID()
	prompt := req.promptText()
	promptTokens := tokensOf(prompt)
	s.mu.Lock()
	s.stats.PerID[id]++
	s.stats.PerModel[req.Model]++
	s.stats.ServiceTiers[req.ServiceTier]++
	s.stats.CacheKeys[req.PromptCacheKey]++
	s.stats.CacheRetentions[req.PromptCacheRetention]++
	nth := s.stats.PerID[id]
	flexRefused := req.ServiceTier == "flex" && s.cfg.FlexUnavailable > 0 && s.rng.Float64() < s.cfg.FlexUnavailable
	s.mu.Unlock()

	if s.cfg.InsufficientQuota {
		s.count(KindQuota)
		writeError(w, http.StatusTooManyRequests, "You exceeded your current quota, please check your plan and billing details.", "insufficient_quota", "", "insufficient_quota")
		return
	}
	if !s.admit(w, promptTokens) {
		s.count(Kind429)
		return
	}
	if st, ok := s.cfg.FailIDs[id]; ok {
		kind := strconv.Itoa(st)
		if st == http.StatusTooManyRequests {
			kind = Kind429
		}
		s.count(kind)
		writeError(w, st, fmt.Sprintf("fakeai: record %s always fails with HTTP %d", id, st), "invalid_request_error", "", "")
		return
	}
	if flexRefused {
		s.count(KindFlexUnavailable)
		writeError(w, http.StatusTooManyRequests, "Resource Unavailable: the flex tier has no capacity for this request now. Retry later, or send it on the default tier.", "resource_unavailable", "", "resource_unavailable")
		return
	}

	fault, jitter, choice := s.draw()
	if s.cfg.Latency.PerRecord && s.cfg.Latency.Sigma > 0 {
		h := fnv.New64a()
		fmt.Fprintf(h, "%d\x00%s\x00%d", s.cfg.Seed, id, nth)
		jitter = math.Exp(s.cfg.Latency.Sigma * rand.New(rand.NewPCG(h.Sum64(), 0)).NormFloat64())
	}
	switch fault {
	case Kind429:
		s.count(Kind429)
		if s.cfg.RetryAfter > 0 {
			setRetryAfter(w.Header(), s.cfg.RetryAfter)
		}
		writeError(w, http.StatusTooManyRequests, "Rate limit reached for requests. Please try again later.", "requests", "", "rate_limit_exceeded")
		return
	case Kind500:
		s.count(Kind500)
		writeError(w, http.StatusInternalServerError, "The server had an error while processing your request. Sorry about that!", "server_error", "", "")
		return
	case Kind503:
		s.count(Kind503)
		writeError(w, http.StatusServiceUnavailable, "The engine is currently overloaded, please try again later.", "server_error", "", "")
		return
	case KindDrop:
		s.count(KindDrop)
		drop(w)
		return
	case KindStall:
		s.count(KindStall)
		if wait.Sleep(r.Context(), s.cfg.StallFor) != nil {
			return
		}
	}

	lat := time.Duration(float64(s.cfg.Latency.Base+time.Duration(promptTokens)*s.cfg.Latency.PerPromptToken) * jitter)
	if wait.Sleep(r.Context(), lat) != nil {
		return
	}

	if len(req.Tools) > 0 {
		s.mu.Lock()
		seq := s.seq
		s.mu.Unlock()
		t := s.agentAnswer(id, req, seq)
		if fault == KindStall {
			t.kind = KindStall
		}
		if t.kind != KindStall {
			s.count(t.kind)
		}
		s.writeCompletion(w, req, reply{content: t.text, calls: t.calls}, prompt)
		return
	}
	var answer map[string]any
	if s.cfg.Answer != nil {
		answer = s.cfg.Answer(id, req)
	} else {
		answer = DefaultAnswer(id, req.Schema())
	}
	noise := s.cfg.Noise
	if n, ok := s.cfg.ModelNoise[req.Model]; ok {
		noise = n
	}
	if noise > 0 {
		answer = noisy(answer, req.Schema(), noise, s.cfg.Seed, id, nth)
	}
	if fault == KindSchemaBreak {
		answer = breakAnswer(answer, req.Schema(), choice)
	}
	raw, err := json.Marshal(answer)
	if err != nil {
		s.count(Kind500)
		writeError(w, http.StatusInternalServerError, "fakeai: cannot encode answer: "+err.Error(), "server_error", "", "")
		return
	}
	content, refusal, finish := string(raw), "", "stop"
	switch fault {
	case KindBadJSON:
		content = "Sure! Here is the JSON you asked for: " + content[:len(content)/2]
	case KindRefusal:
		content, refusal = "", "I'm sorry, but I can't help with that request."
	case KindLength:
		content, finish = content[:len(content)/2], "length"
	case KindSchemaBreak, KindStall:
	default:
		fault = KindOK
	}
	if fault != KindStall {
		s.count(fault)
	}
	s.writeCompletion(w, req, reply{content: content, refusal: refusal, finish: finish}, prompt)
}

// reply is the message of a completion: content, a refusal, or tool calls.
type reply struct {
	content, refusal, finish string
	calls                    []ToolCall
}

// draw picks the fault of a request (one of the Kind* constants or "" for none), the latency
// jitter multiplier and a choice for schema breaks.
func (s *Server) draw() (string, float64, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.rng.Float64()
	jitter := 1.0
	if s.cfg.Latency.Sigma > 0 {
		jitter = math.Exp(s.cfg.Latency.Sigma * s.rng.NormFloat64())
	}
	choice := s.rng.IntN(1 << 30)
	for _, f := range []struct {
		kind string
		rate float64
	}{
		{Kind429, s.cfg.Rate429}, {Kind500, s.cfg.Rate500}, {Kind503, s.cfg.Rate503},
		{KindDrop, s.cfg.RateDrop}, {KindStall, s.cfg.RateStall}, {KindBadJSON, s.cfg.RateBadJSON},
		{KindSchemaBreak, s.cfg.RateSchemaBreak}, {KindRefusal, s.cfg.RateRefusal}, {KindLength, s.cfg.RateLength},
	} {
		if f.rate <= 0 {
			continue
		}
		if u < f.rate {
			return f.kind, jitter, choice
		}
		u -= f.rate
	}
	return "", jitter, choice
}

// admit applies the RPM and TPM limits. It records an accepted request and sets the
// x-ratelimit-* headers; over a limit it writes the 429 and returns false.
func (s *Server) admit(w http.ResponseWriter, tokens int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	cut := 0
	for cut < len(s.window) && !s.window[cut].at.After(now.Add(-window)) {
		cut++
	}
	s.window = s.window[cut:]
	used := 0
	for _, a := range s.window {
		used += a.tokens
	}
	h := w.Header()
	reqReset, tokReset := time.Duration(0), time.Duration(0)
	overReq := s.cfg.RPM > 0 && len(s.window) >= s.cfg.RPM
	overTok := s.cfg.TPM > 0 && used+tokens > s.cfg.TPM
	if overReq {
		// The oldest request that must expire before one more fits.
		reqReset = s.window[len(s.window)-s.cfg.RPM].at.Add(window).Sub(now)
	}
	if overTok {
		tokReset = window
		need := used + tokens - s.cfg.TPM
		for _, a := range s.window {
			need -= a.tokens
			if need <= 0 {
				tokReset = a.at.Add(window).Sub(now)
				break
			}
		}
	}
	if s.cfg.RPM > 0 {
		h.Set("x-ratelimit-limit-requests", strconv.Itoa(s.cfg.RPM))
		h.Set("x-ratelimit-remaining-requests", strconv.Itoa(max(0, s.cfg.RPM-len(s.window)-boolInt(!overReq && !overTok))))
		h.Set("x-ratelimit-reset-requests", resetString(reqReset))
	}
	if s.cfg.TPM > 0 {
		rem := s.cfg.TPM - used
		if !overReq && !overTok {
			rem -= tokens
		}
		h.Set("x-ratelimit-limit-tokens", strconv.Itoa(s.cfg.TPM))
		h.Set("x-ratelimit-remaining-tokens", strconv.Itoa(max(0, rem)))
		h.Set("x-ratelimit-reset-tokens", resetString(tokReset))
	}
	if overReq || overTok {
		wait := max(reqReset, tokReset)
		setRetryAfter(h, wait)
		what, limit, usedNow, requested, typ := "requests per min (RPM)", s.cfg.RPM, len(s.window), 1, "requests"
		if !overReq {
			what, limit, usedNow, requested, typ = "tokens per min (TPM)", s.cfg.TPM, used, tokens, "tokens"
		}
		writeError(w, http.StatusTooManyRequests, fmt.Sprintf(
			"Rate limit reached for fakeai in organization org-fake on %s: Limit %d, Used %d, Requested %d. Please try again in %s.",
			what, limit, usedNow, requested, resetString(wait)), typ, "", "rate_limit_exceeded")
		return false
	}
	s.window = append(s.window, admitted{at: now, tokens: tokens})
	s.stats.Accepted = append(s.stats.Accepted, now)
	return true
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// resetString spells a reset time the way OpenAI does ("1.2s", "20ms", "6m0s").
func resetString(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	return d.Round(time.Millisecond).String()
}

func setRetryAfter(h http.Header, d time.Duration) {
	h.Set("retry-after-ms", strconv.FormatInt(max(1, d.Milliseconds()), 10))
	h.Set("retry-after", strconv.FormatInt(int64(math.Ceil(d.Seconds())), 10))
}

// writeCompletion answers req with r. prompt is req's prompt text: its tokens, and its prefixes
// for the prompt cache, which the answer then holds.
func (s *Server) writeCompletion(w http.ResponseWriter, req ChatRequest, r reply, prompt string) {
	promptTokens := tokensOf(prompt)
	var prefixes []uint64
	if s.cfg.PromptCache {
		prefixes = prefixHashes(req.Model, prompt)
	}
	completionTokens := len(r.content) / 4
	if r.refusal != "" {
		completionTokens = len(r.refusal) / 4
	}
	for _, c := range r.calls {
		completionTokens += 8 + (len(c.Function.Name)+len(c.Function.Arguments))/4
	}
	s.mu.Lock()
	s.seq++
	seq := s.seq
	created := s.now().Unix()
	cached := s.cache.hit(prefixes)
	if len(prefixes) > 0 {
		s.cache.add(prefixes)
	}
	s.stats.PromptTokens += int64(promptTokens)
	s.stats.CachedTokens += int64(cached)
	s.stats.CompletionTokens += int64(completionTokens)
	for _, c := range r.calls {
		s.stats.ToolCalls[c.Function.Name]++
	}
	s.mu.Unlock()
	var contentV, refusalV any
	if r.refusal != "" {
		refusalV = r.refusal
	} else if r.content != "" || len(r.calls) == 0 {
		contentV = r.content
	}
	message := map[string]any{
		"role":        "assistant",
		"content":     contentV,
		"refusal":     refusalV,
		"annotations": []any{},
	}
	finish := r.finish
	if len(r.calls) > 0 {
		message["tool_calls"] = r.calls
		finish = "tool_calls"
	} else if finish == "" {
		finish = "stop"
	}
	resp := map[string]any{
		"id":      fmt.Sprintf("chatcmpl-fake%08d", seq),
		"object":  "chat.completion",
		"created": created,
		"model":   req.Model,
		"choices": []any{map[string]any{
			"index":         0,
			"message":       message,
			"logprobs":      nil,
			"finish_reason": finish,
		}},
		"usage": map[string]any{
			"prompt_tokens":     promptTokens,
			"completion_tokens": completionTokens,
			"total_tokens":      promptTokens + completionTokens,
			"prompt_tokens_details": map[string]any{
				"cached_tokens": cached,
				"audio_tokens":  0,
			},
			"completion_tokens_details": map[string]any{
				"reasoning_tokens":           0,
				"audio_tokens":               0,
				"accepted_prediction_tokens": 0,
				"rejected_prediction_tokens": 0,
			},
		},
		"service_tier":       servedTier(req.ServiceTier),
		"system_fingerprint": "fp_fakeai",
	}
	writeJSON(w, http.StatusOK, resp)
}

// servedTier is the tier an answer says it was served on: flex and priority as asked, the
// default tier for the rest ("auto" included).
func servedTier(asked string) string {
	switch asked {
	case "flex", "priority":
		return asked
	}
	return "default"
}

func writeError(w http.ResponseWriter, status int, msg, typ, param, code string) {
	e := map[string]any{"message": msg, "type": typ, "param": nil, "code": nil}
	if param != "" {
		e["param"] = param
	}
	if code != "" {
		e["code"] = code
	}
	writeJSON(w, status, map[string]any{"error": e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// drop closes the connection without an answer: hijacked when the server allows it, else
// aborted with http.ErrAbortHandler.
func drop(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}
