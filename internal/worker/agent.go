package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/trialcat/trialcat/internal/agent"
	"github.com/trialcat/trialcat/internal/cache"
	"github.com/trialcat/trialcat/internal/exitcode"
	"github.com/trialcat/trialcat/internal/llm"
	"github.com/trialcat/trialcat/internal/prompt"
	"github.com/trialcat/trialcat/internal/record"
	"github.com/trialcat/trialcat/internal/runspec"
	"github.com/trialcat/trialcat/internal/toolserver"
	"github.com/trialcat/trialcat/internal/wire"
)

// agentState is a batch's agent: the loop, its template and its transcript.
type agentState struct {
	loop       *agent.Agent
	tmpl       *prompt.Template
	spec       *runspec.Agent
	transcript *transcript // nil with --transcripts off
}

// setUpAgent readies the batch's agent (run.json's agent settings) with the tool sources given;
// its template is parsed once per serving worker (Deps.parsePrompt).
func (r *runner) setUpAgent(external []agent.Toolbox, deps Deps) error {
	a := r.spec.Agent
	tmpl, err := deps.parsePrompt(a.PromptSource, a.Prompt)
	if err != nil {
		return err
	}
	loop, err := agent.New(agent.Config{Schema: r.schema, MaxTurns: a.MaxTurns, MaxTokens: a.MaxTokens, External: external})
	if err != nil {
		return err
	}
	st := &agentState{loop: loop, tmpl: tmpl, spec: a}
	if a.Transcripts {
		if st.transcript, err = openTranscript(r.files.Transcript); err != nil {
			return exitcode.StorageFailed(fmt.Sprintf("cannot open %s: %v", r.files.Transcript, err))
		}
	}
	r.agent = st
	return nil
}

// processAgent works one record through the tool loop, then records its answer, its fallback to
// the one-shot prompt, or its failure.
func (r *runner) processAgent(ctx context.Context, rec record.Record) error {
	st := r.agent
	msgs, err := st.tmpl.Render(rec)
	if err != nil {
		return r.fail(rec.ID, "prompt_error", err.Error(), llm.Result{Attempts: r.prior[rec.ID]})
	}
	ar, err := st.loop.Prepare(rec, st.loop.System(msgs.System), msgs.User)
	if err != nil {
		return r.fail(rec.ID, "prompt_error", err.Error(), llm.Result{Attempts: r.prior[rec.ID]})
	}
	key := r.agentCacheKey(rec, ar)
	if res, ok := r.fromCache(key, rec.ID); ok {
		return r.succeedAs(rec.ID, res, true)
	}
	model := r.modelFor(rec.ID)
	// The journal gets one line per loop, before its first request: a worker that dies
	// mid-loop has spent one of the record's attempts, and the loop starts again.
	var journal sync.Once
	var journalErr error
	journaled := false
	turn := func(ctx context.Context, m []llm.Message, n int) (llm.Result, error) {
		req := llm.Request{RecordID: rec.ID, Model: model, Messages: m, Tools: st.loop.Tools(), ServiceTier: r.spec.ServiceTier}
		est := r.turnEstimate(m)
		caller := *r.caller
		caller.BeforeAttempt = func(ctx context.Context, id string, attempt int) error {
			if err := r.waitPermit(ctx, est); err != nil {
				return err
			}
			journal.Do(func() {
				if journalErr = r.attempts.Record(id); journalErr == nil {
					journaled = true
				}
			})
			if journalErr != nil {
				return r.writeFailed(r.files.Attempts, journalErr)
			}
			r.started.Add(1)
			return nil
		}
		caller.OnAttempt = func(a llm.Attempt) {
			r.onTurnAttempt(a, n)
			r.rateFeedback(est, a)
		}
		return caller.Call(ctx, req, 0)
	}
	observe := func(s agent.Step) {
		r.log.Debug().Str("id", rec.ID).Int("turn", s.Turn).Interface("calls", s.Calls).Str("text", s.Text).
			Int64("input_tokens", s.Usage.InputTokens).Int64("output_tokens", s.Usage.OutputTokens).
			Int64("latency_ms", s.LatencyMS).Bool("accepted", s.Accepted).Msg("agent turn")
		st.transcript.step(r, rec.ID, s)
	}
	out, err := st.loop.Run(ctx, ar, turn, observe)
	res := llm.Result{Values: out.Values, Content: out.Content, Model: out.Model, Usage: out.Usage, Billed: out.Billed, Tier: out.Tier,
		Attempts: out.Attempts, Latency: out.Latency}
	if res.Model == "" {
		res.Model = model
	}
	info := answerInfo{turns: out.Turns, toolCalls: out.ToolCalls}
	if err == nil {
		r.store(key, res)
		st.transcript.end(r, rec.ID, "answered", out)
		return r.record(rec.ID, res, info)
	}
	var limit *agent.LimitError
	switch {
	case errors.As(err, &limit):
		r.log.Info().Str("id", rec.ID).Str("limit", limit.Kind).Int("turns", out.Turns).Str("fallback", st.spec.Fallback).Msg(limit.Detail)
		if st.spec.Fallback == runspec.AgentFallbackFail {
			st.transcript.end(r, rec.ID, wire.ClassAgentLimit, out)
			return r.fail(rec.ID, wire.ClassAgentLimit, limit.Detail+"; --agent-fallback fail", res)
		}
		st.transcript.end(r, rec.ID, "fallback", out)
		info.fallback = true
		return r.askOnce(ctx, rec, info, res)
	case errors.Is(err, agent.ErrToolServer):
		st.transcript.end(r, rec.ID, wire.ClassToolServer, out)
		return r.fail(rec.ID, wire.ClassToolServer, err.Error(), res)
	}
	if journaled && ctx.Err() != nil {
		// Cut off by the run stopping: not the record's fault, and its loop starts again.
		if err := r.attempts.Refund(rec.ID); err != nil {
			r.log.Error().Err(err).Str("id", rec.ID).Msg("cannot give back an abandoned attempt")
		}
	}
	st.transcript.end(r, rec.ID, "stopped", out)
	return r.settle(ctx, rec.ID, err, res)
}

// turnEstimate is the tokens a turn is expected to use, for the rate limiter: the
// conversation's text and the tools' definitions at 4 bytes a token, and the expected output.
func (r *runner) turnEstimate(msgs []llm.Message) int {
	n := r.agentToolTokens + r.outTokens
	for _, m := range msgs {
		n += len(m.Content)/4 + 4
		for _, c := range m.ToolCalls {
			n += (len(c.Name) + len(c.Arguments)) / 4
		}
	}
	return n
}

// onTurnAttempt logs an attempt of an agent's turn and tells the coordinator of a retry. The
// journal is not touched: it holds one line per loop.
func (r *runner) onTurnAttempt(a llm.Attempt, turn int) {
	r.reach.note(r, a)
	if a.Warning != "" {
		r.log.Warn().Str("id", a.RecordID).Int("turn", turn).Int("attempt", a.Attempt).Msg(a.Warning)
	}
	if a.Err != nil && a.Err.Class == llm.ClassCanceled {
		return
	}
	r.logAttempt(a, turn)
}

// agentCacheKey is the response cache's key of a whole loop: the first request's body (the
// record's overview and sections, the instructions, the tools and the model settings) and the
// loop's limits, so that a loop is reused only where it would run the same way.
func (r *runner) agentCacheKey(rec record.Record, ar *agent.Record) string {
	if r.cache == nil || r.openai == nil {
		return ""
	}
	body, err := r.openai.Body(llm.Request{RecordID: rec.ID, Model: r.modelFor(rec.ID), Messages: ar.Messages(), Tools: r.agent.loop.Tools()})
	if err != nil {
		return ""
	}
	limits := fmt.Sprintf("\x00agent max_turns=%d max_tokens=%d", r.spec.Agent.MaxTurns, r.spec.Agent.MaxTokens)
	return cache.Key(r.cacheHost, append(body, limits...))
}

// transcript is OUT/transcripts/worker_N.jsonl: a line per turn as it ends, and a line per
// record as its loop ends, each one write.
type transcript struct {
	mu sync.Mutex
	f  *os.File
}

func openTranscript(path string) (*transcript, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	return &transcript{f: f}, nil
}

// turnLine is a transcript line of one turn.
type turnLine struct {
	At               time.Time    `json:"at"`
	ID               string       `json:"id"`
	Turn             int          `json:"turn"`
	Calls            []agent.Call `json:"calls,omitempty"`
	Text             string       `json:"text,omitempty"`
	Accepted         bool         `json:"accepted,omitempty"`
	PromptTokens     int64        `json:"prompt_tokens"`
	CachedTokens     int64        `json:"cached_tokens"`
	CompletionTokens int64        `json:"completion_tokens"`
	Attempts         int          `json:"attempts"`
	LatencyMS        int64        `json:"latency_ms"`
}

// endLine is a transcript line of a record's loop ending.
type endLine struct {
	At        time.Time      `json:"at"`
	ID        string         `json:"id"`
	Outcome   string         `json:"outcome"`
	Turns     int            `json:"turns"`
	ToolCalls map[string]int `json:"tool_calls"`
}

func (t *transcript) step(r *runner, id string, s agent.Step) {
	if t == nil {
		return
	}
	t.write(r, turnLine{At: time.Now().UTC(), ID: id, Turn: s.Turn, Calls: s.Calls, Text: s.Text, Accepted: s.Accepted,
		PromptTokens: s.Usage.InputTokens, CachedTokens: s.Usage.CachedInputTokens, CompletionTokens: s.Usage.OutputTokens,
		Attempts: s.Attempts, LatencyMS: s.LatencyMS})
}

func (t *transcript) end(r *runner, id, outcome string, out agent.Outcome) {
	if t == nil {
		return
	}
	t.write(r, endLine{At: time.Now().UTC(), ID: id, Outcome: outcome, Turns: out.Turns, ToolCalls: out.ToolCalls})
}

// write appends one line. A transcript is for reading, not for resuming: a line that cannot be
// written is logged once and the run goes on.
func (t *transcript) write(r *runner, v any) {
	b, err := json.Marshal(v)
	if err == nil {
		b = append(b, '\n')
		t.mu.Lock()
		_, err = t.f.Write(b)
		t.mu.Unlock()
	}
	if err != nil {
		r.transcriptWarn.Do(func() {
			r.log.Warn().Err(err).Str("file", t.f.Name()).Msg("cannot write the transcript; the run goes on without it")
		})
	}
}

func (t *transcript) close() {
	if t != nil {
		t.f.Close()
	}
}

// startAgent starts the run's MCP servers (a failure to start one fails the batch: the run asks
// for its tools) and readies the agent with them.
func (r *runner) startAgent(deps Deps) error {
	var ext []agent.Toolbox
	getenv := deps.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	var env []string
	for _, k := range toolserver.EnvPassed {
		if v := getenv(k); v != "" {
			env = append(env, k+"="+v)
		}
	}
	for _, argv := range r.spec.Agent.MCP {
		name := filepath.Base(argv[0])
		s, err := toolserver.Start(context.Background(), toolserver.Config{Argv: argv, Env: env, Stderr: func(line string) {
			r.log.Info().Str("mcp", name).Msg(line)
		}, CallTimeout: time.Duration(r.spec.Timeout)})
		if err != nil {
			return fmt.Errorf("%w; check the --mcp command (run it by hand: it must speak MCP over stdin and stdout): %w", err, exitcode.ErrUsage)
		}
		r.log.Info().Str("mcp", name).Int("tools", len(s.Tools())).Msg("MCP server started")
		r.toolServers = append(r.toolServers, s)
		ext = append(ext, s)
	}
	if err := r.setUpAgent(ext, deps); err != nil {
		return err
	}
	defs, _ := json.Marshal(r.agent.loop.Tools())
	r.agentToolTokens = len(defs) / 4
	return nil
}
