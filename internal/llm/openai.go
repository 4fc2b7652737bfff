package llm

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
	"github.com/trialcat/trialcat/internal/modelinfo"
	"github.com/trialcat/trialcat/internal/runspec"
	"github.com/trialcat/trialcat/internal/schema"
)

// DefaultBaseURL is the OpenAI API used when OpenAIConfig.BaseURL is empty.
const DefaultBaseURL = "https://api.openai.com/v1/"

// DefaultMaxResponseBytes bounds the body of one answer, counted after decompression: an answer
// of the categorization schemas is a few kilobytes, and a server that sends more (a huge, a
// compressed-bomb or an endless body) fails the attempt as response_too_large instead of
// filling the worker's memory.
const DefaultMaxResponseBytes = 8 << 20

// OpenAIConfig configures an OpenAI-compatible Chat Completions provider.
type OpenAIConfig struct {
	// BaseURL is the API root, e.g. "http://127.0.0.1:8000/v1"; empty means DefaultBaseURL.
	BaseURL string
	// APIKey is sent as a bearer token. The caller reads it from the environment; it is never
	// logged and is redacted from every error.
	APIKey string
	// SchemaName names the JSON schema in response_format.
	SchemaName string
	// Schema is the strict JSON schema of the answer.
	Schema map[string]any
	// ReasoningEffort is sent as reasoning_effort when not empty, whatever the model: servers
	// that do not support it answer 400 (bad_request), so check it against the model up front.
	ReasoningEffort string
	// Temperature is sent when not nil, except to reasoning models (see IsReasoningModel), for
	// which it is silently left out.
	Temperature *float64
	// MaxCompletionTokens is sent as max_completion_tokens when above 0.
	MaxCompletionTokens int64
	// Timeout bounds one attempt when above 0.
	Timeout time.Duration
	// HTTPClient is optional; nil means a client on a clone of http.DefaultTransport with 64
	// idle connections per host.
	HTTPClient *http.Client
	// MaxResponseBytes bounds a response body after decompression; 0 means
	// DefaultMaxResponseBytes.
	MaxResponseBytes int64
	// PromptCacheKey is sent as prompt_cache_key when not empty: requests with the same key and
	// prefix are routed to the same cache. CacheRetention is sent as prompt_cache_retention
	// ("in_memory" or "24h") when not empty.
	PromptCacheKey string
	CacheRetention string
}

// OpenAI is a Provider for OpenAI-compatible Chat Completions servers (OpenAI, vLLM, Ollama,
// llama.cpp). It asks for structured output with response_format json_schema strict and makes
// one attempt per Complete: the SDK's own retries are disabled.
type OpenAI struct {
	cfg    OpenAIConfig
	client openai.Client
	bodies bodies
}

var _ Provider = (*OpenAI)(nil)

// NewOpenAI returns a provider for cfg. It reads no OPENAI_* environment variables.
func NewOpenAI(cfg OpenAIConfig) *OpenAI {
	base, hc := cfg.endpoint()
	if cfg.SchemaName == "" {
		cfg.SchemaName = "answer"
	}
	return &OpenAI{cfg: cfg, client: openai.NewClient(clientOptions(cfg, base, hc, true)...)}
}

// clientOptions are the SDK options of every client: base URL, key, HTTP client, no SDK
// retries, and (for answers, capped) the response body bound.
func clientOptions(cfg OpenAIConfig, base string, hc *http.Client, capped bool) []option.RequestOption {
	limit := cfg.MaxResponseBytes
	if limit <= 0 {
		limit = DefaultMaxResponseBytes
	}
	opts := []option.RequestOption{
		option.WithBaseURL(base),
		option.WithAPIKey(cfg.APIKey),
		option.WithHTTPClient(hc),
		option.WithMaxRetries(0),
	}
	if capped {
		opts = append(opts, option.WithMiddleware(func(req *http.Request, next option.MiddlewareNext) (*http.Response, error) {
			res, err := next(req)
			if res != nil && res.Body != nil {
				res.Body = &cappedBody{rc: res.Body, left: limit, limit: limit}
			}
			return res, err
		}))
	}
	if cfg.Timeout > 0 {
		opts = append(opts, option.WithRequestTimeout(cfg.Timeout))
	}
	return opts
}

// endpoint is the base URL and HTTP client of cfg, with their defaults.
func (cfg OpenAIConfig) endpoint() (string, *http.Client) {
	base, hc := cfg.BaseURL, cfg.HTTPClient
	if base == "" {
		base = DefaultBaseURL
	}
	if hc == nil {
		hc = NewHTTPClient()
	}
	return base, hc
}

// NewHTTPClient is the client a config without one gets: enough idle connections for a worker's
// concurrent requests and, like the SDK's default, a bound on the wait for response headers. A
// process that makes several providers (a serving worker, batch after batch) shares one, so its
// connections are reused rather than dialled again for every batch.
func NewHTTPClient() *http.Client {
	t, ok := http.DefaultTransport.(*http.Transport)
	if !ok {
		return &http.Client{Transport: http.DefaultTransport}
	}
	t = t.Clone()
	t.MaxIdleConnsPerHost = 64
	t.ResponseHeaderTimeout = 10 * time.Minute
	return &http.Client{Transport: t}
}

// Params builds the Chat Completions request body for req: structured output in the run's
// schema, or, when req offers tools, the tools and the conversation so far.
func (o *OpenAI) Params(req Request) openai.ChatCompletionNewParams {
	p := openai.ChatCompletionNewParams{Model: shared.ChatModel(req.Model)}
	if len(req.Tools) == 0 {
		p.ResponseFormat = openai.ChatCompletionNewParamsResponseFormatUnion{
			OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{
				JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{
					Name:   o.cfg.SchemaName,
					Strict: openai.Bool(true),
					Schema: o.cfg.Schema,
				},
			},
		}
	}
	for _, t := range req.Tools {
		fn := shared.FunctionDefinitionParam{Name: t.Name, Parameters: shared.FunctionParameters(t.Parameters)}
		if t.Description != "" {
			fn.Description = openai.String(t.Description)
		}
		if t.Strict {
			fn.Strict = openai.Bool(true)
		}
		p.Tools = append(p.Tools, openai.ChatCompletionFunctionTool(fn))
	}
	if len(req.Messages) > 0 {
		p.Messages = messageParams(req.Messages)
	} else {
		if req.System != "" {
			p.Messages = append(p.Messages, openai.SystemMessage(req.System))
		}
		p.Messages = append(p.Messages, openai.UserMessage(req.User))
	}
	if o.cfg.MaxCompletionTokens > 0 {
		p.MaxCompletionTokens = openai.Int(o.cfg.MaxCompletionTokens)
	}
	if o.cfg.ReasoningEffort != "" {
		p.ReasoningEffort = shared.ReasoningEffort(o.cfg.ReasoningEffort)
	}
	if o.cfg.Temperature != nil && !modelinfo.IsReasoning(req.Model) {
		p.Temperature = openai.Float(*o.cfg.Temperature)
	}
	return p
}

// messageParams spells a conversation in the SDK's types.
func messageParams(msgs []Message) []openai.ChatCompletionMessageParamUnion {
	out := make([]openai.ChatCompletionMessageParamUnion, 0, len(msgs))
	for _, m := range msgs {
		switch m.Role {
		case RoleSystem:
			out = append(out, openai.SystemMessage(m.Content))
		case RoleTool:
			out = append(out, openai.ToolMessage(m.Content, m.ToolCallID))
		case RoleAssistant:
			a := openai.ChatCompletionAssistantMessageParam{}
			if m.Content != "" {
				a.Content.OfString = openai.String(m.Content)
			}
			for _, c := range m.ToolCalls {
				a.ToolCalls = append(a.ToolCalls, openai.ChatCompletionMessageToolCallUnionParam{
					OfFunction: &openai.ChatCompletionMessageFunctionToolCallParam{
						ID:       c.ID,
						Function: openai.ChatCompletionMessageFunctionToolCallFunctionParam{Name: c.Name, Arguments: c.Arguments},
					},
				})
			}
			out = append(out, openai.ChatCompletionMessageParamUnion{OfAssistant: &a})
		default:
			out = append(out, openai.UserMessage(m.Content))
		}
	}
	return out
}

// sent is Params with what only steers delivery and billing, never the answer: the prompt cache
// key and retention and the service tier. A live request sends it.
func (o *OpenAI) sent(req Request) openai.ChatCompletionNewParams {
	p := o.Params(req)
	if o.cfg.PromptCacheKey != "" {
		p.PromptCacheKey = openai.String(o.cfg.PromptCacheKey)
	}
	if o.cfg.CacheRetention != "" {
		p.PromptCacheRetention = openai.ChatCompletionNewParamsPromptCacheRetention(o.cfg.CacheRetention)
	}
	if req.ServiceTier != "" {
		p.ServiceTier = openai.ChatCompletionNewParamsServiceTier(req.ServiceTier)
	}
	return p
}

// SentBody is the body a live request for req sends (Body with the delivery fields).
func (o *OpenAI) SentBody(req Request) ([]byte, error) { return o.body(req, true) }

// Body is the request body of req as JSON without the fields that steer only delivery and
// billing (prompt cache key and retention, service tier): what a Batch API line holds and what
// the response cache keys on, so that neither changes with them.
func (o *OpenAI) Body(req Request) ([]byte, error) { return o.body(req, false) }

// body encodes req, with the delivery fields when sent, from a template of the SDK's encoding:
// a one-shot request (encode), a conversation or a request with tools (encodeConversation).
func (o *OpenAI) body(req Request, sent bool) ([]byte, error) {
	if oneShot(req) {
		return o.encode(req, sent)
	}
	return o.encodeConversation(req, sent)
}

// paramsFor is Params, with the delivery fields when sent.
func (o *OpenAI) paramsFor(req Request, sent bool) openai.ChatCompletionNewParams {
	if sent {
		return o.sent(req)
	}
	return o.Params(req)
}

// ForRun is the configuration of the run's OpenAI-compatible server: the request parameters
// from run.json, the key and base URL as the caller read them from the environment.
func ForRun(spec *runspec.Spec, sch *schema.Schema, key, baseURL string) OpenAIConfig {
	return OpenAIConfig{
		BaseURL: baseURL, APIKey: key, SchemaName: sch.Name, Schema: sch.StrictJSON(),
		ReasoningEffort: spec.ReasoningEffort, Temperature: spec.Temperature,
		MaxCompletionTokens: spec.MaxCompletionTokens, Timeout: time.Duration(spec.Timeout),
		PromptCacheKey: spec.PromptCacheKey, CacheRetention: spec.CacheRetention,
	}
}

// Complete makes one attempt. A refusal or a truncated answer returns the Reply (with its
// usage) together with an *Error; every error it returns is an *Error free of the API key.
func (o *OpenAI) Complete(ctx context.Context, req Request) (Reply, error) {
	body, err := o.SentBody(req)
	if err != nil {
		return Reply{}, &Error{Class: ClassBadRequest, Message: err.Error()}
	}
	var raw *http.Response
	var contents []byte
	if err := o.client.Post(ctx, "chat/completions", body, &contents, option.WithResponseInto(&raw)); err != nil {
		return Reply{}, redactError(Classify(err), o.cfg.APIKey)
	}
	resp, err := decodeCompletion(contents)
	if err != nil {
		return Reply{}, &Error{Class: ClassServerError, Message: "malformed response: " + Redact(clip(err.Error(), 200), o.cfg.APIKey)}
	}
	var h http.Header
	if raw != nil {
		h = raw.Header
	}
	return o.reply(req, resp, h)
}

// reply reads an answer: its model, usage and content, a refusal or a truncation.
func (o *OpenAI) reply(req Request, resp *completion, header http.Header) (Reply, error) {
	rep := Reply{Model: string(resp.Model), RateLimit: RateHeaders(header), ServiceTier: servedTier(string(resp.ServiceTier))}
	if rep.Model == "" {
		rep.Model = req.Model
	}
	rep.Usage, rep.Warning = Usage{
		InputTokens:       int64(resp.Usage.PromptTokens),
		CachedInputTokens: int64(resp.Usage.PromptTokensDetails.CachedTokens),
		OutputTokens:      int64(resp.Usage.CompletionTokens),
	}.Sane(modelinfo.ContextWindow(req.Model))
	if len(resp.Choices) == 0 {
		return rep, &Error{Class: ClassServerError, Message: "response has no choices"}
	}
	ch := resp.Choices[0]
	rep.Content = string(ch.Message.Content)
	for _, c := range ch.Message.ToolCalls {
		if c.Type != "" && c.Type != "function" {
			continue // a custom tool: none is offered
		}
		rep.ToolCalls = append(rep.ToolCalls, ToolCall{ID: string(c.ID), Name: string(c.Function.Name), Arguments: string(c.Function.Arguments)})
	}
	switch {
	case ch.Message.Refusal != "":
		return rep, &Error{Class: ClassRefusal, Message: Redact(clip(string(ch.Message.Refusal), 200), o.cfg.APIKey)}
	case ch.FinishReason == "content_filter":
		return rep, &Error{Class: ClassRefusal, Message: "finish_reason content_filter"}
	case ch.FinishReason == "length":
		return rep, &Error{Class: ClassTruncated, Message: "finish_reason length: the answer hit the token limit"}
	}
	return rep, nil
}

// servedTier is the tier an answer names, if it is one the price table knows of (a server may
// echo anything; it reaches a results cell and decides a price): "" for any other.
func servedTier(tier string) string {
	switch tier {
	case TierDefault, TierFlex, TierPriority, TierAuto, "scale":
		return tier
	}
	return ""
}

// oneShot reports whether req is a plain question (no tools, no conversation): the body encode
// makes.
func oneShot(req Request) bool { return len(req.Tools) == 0 && len(req.Messages) == 0 }

// Clip shortens s to at most n bytes without splitting a UTF-8 sequence, marking the cut.
func Clip(s string, n int) string { return clip(s, n) }

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

// cappedBody reads at most limit bytes of a response body; one more is ErrResponseTooLarge.
type cappedBody struct {
	rc          io.ReadCloser
	left, limit int64
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		var one [1]byte
		if n, err := b.rc.Read(one[:]); n > 0 {
			return 0, fmt.Errorf("%w: the body is over %d bytes", ErrResponseTooLarge, b.limit)
		} else if err != nil {
			return 0, err
		}
		return 0, nil
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *cappedBody) Close() error { return b.rc.Close() }
