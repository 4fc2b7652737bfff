package agent

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/trialcat/trialcat/internal/llm"
	"github.com/trialcat/trialcat/internal/record"
	"github.com/trialcat/trialcat/internal/schema"
	"github.com/trialcat/trialcat/internal/taxonomy"
	"github.com/trialcat/trialcat/internal/tokens"
)

// Defaults of the limits per record.
const (
	DefaultMaxTurns  = 8
	DefaultMaxTokens = 60_000
)

// Kinds of LimitError.
const (
	LimitTurns    = "turns"     // --agent-max-turns requests made without an accepted submit
	LimitTokens   = "tokens"    // --agent-max-tokens prompt and completion tokens spent
	LimitNoSubmit = "no_submit" // text again after the nudge to submit
)

// ErrLimit is wrapped by every LimitError.
var ErrLimit = errors.New("the agent reached a limit without an accepted answer")

// LimitError says which limit ended a record's loop.
type LimitError struct {
	Kind   string
	Detail string
}

func (e *LimitError) Error() string { return e.Detail }

// Unwrap returns ErrLimit.
func (e *LimitError) Unwrap() error { return ErrLimit }

// ErrToolServer is wrapped when an external tool's server failed (it exited, or its connection
// broke): the record cannot be worked as the run asks.
var ErrToolServer = errors.New("a tool server failed")

// Toolbox is a source of external tools (an MCP server).
type Toolbox interface {
	// Name names the source in messages.
	Name() string
	// Tools are the tools it offers.
	Tools() []llm.Tool
	// Call calls one of them. isError is the tool's own failure (its text is shown to the
	// model); err is the server's, which fails the record (the loop wraps it in ErrToolServer).
	Call(ctx context.Context, name string, args json.RawMessage) (text string, isError bool, err error)
}

// Config sets up an Agent.
type Config struct {
	// Schema is the run's answer schema: the submit tool's parameters.
	Schema *schema.Schema
	// MaxTurns bounds the requests of one loop; below 1 means DefaultMaxTurns.
	MaxTurns int
	// MaxTokens bounds prompt plus completion tokens over a loop; 0 means none.
	MaxTokens int64
	// External are tool sources offered beside the built-ins.
	External []Toolbox
}

// Agent works records through the tool loop. It is safe for concurrent use.
type Agent struct {
	cfg   Config
	tools []llm.Tool
	owner map[string]Toolbox
	defs  map[string]taxonomy.Definition
	props map[string]schema.Property
}

// New checks cfg: an external tool may not take a built-in's name or another's.
func New(cfg Config) (*Agent, error) {
	if cfg.MaxTurns < 1 {
		cfg.MaxTurns = DefaultMaxTurns
	}
	a := &Agent{cfg: cfg, owner: map[string]Toolbox{}, defs: Definitions(cfg.Schema), props: map[string]schema.Property{}}
	for _, p := range cfg.Schema.Properties {
		a.props[p.Name] = p
	}
	builtins := builtinTools(cfg.Schema)
	taken := map[string]string{}
	for _, t := range builtins {
		taken[t.Name] = "built in"
	}
	var ext []llm.Tool
	for _, tb := range cfg.External {
		for _, t := range tb.Tools() {
			if by, ok := taken[t.Name]; ok {
				return nil, fmt.Errorf("the tool server %s offers a tool named %s, which is %s; rename one of them", tb.Name(), t.Name, by)
			}
			taken[t.Name] = "offered by " + tb.Name()
			a.owner[t.Name] = tb
			ext = append(ext, t)
		}
	}
	// Built-ins first and submit last, external tools between: the order is the same for every
	// record, so the definitions are part of the cached prefix.
	a.tools = append(append(append([]llm.Tool{}, builtins[:len(builtins)-1]...), ext...), builtins[len(builtins)-1])
	return a, nil
}

// Tools are the definitions sent with every turn.
func (a *Agent) Tools() []llm.Tool { return a.tools }

// MaxTurns is the loop's limit of requests.
func (a *Agent) MaxTurns() int { return a.cfg.MaxTurns }

// System is the system message: the template's task text, then how to work with the tools.
func (a *Agent) System(task string) string {
	var b strings.Builder
	if task != "" {
		b.WriteString(task)
		b.WriteString("\n\n")
	}
	fmt.Fprintf(&b, "How to work: the user message gives an overview of the record and a table of its sections. "+
		"Call %s(name, offset, limit) to read a section, a page of tokens at a time; %s(query) to find the lines that mention a term; "+
		"%s(field) for a field's allowed values and what each means; %s to see the table again.", ToolReadSection, ToolSearch, ToolLookup, ToolListSections)
	if len(a.owner) > 0 {
		b.WriteString(" Other tools are offered too; use them when they help.")
	}
	fmt.Fprintf(&b, " When you have decided, call %s once with every field. A refused call says why: fix it and call again. "+
		"Answer only through tool calls; you have at most %d turns.", ToolSubmit, a.cfg.MaxTurns)
	return b.String()
}

// Record is one record prepared for its loop: its sections and the first two messages.
type Record struct {
	rec      record.Record
	sections []Section
	byName   map[string]int
	first    []llm.Message
}

// Prepare cuts rec into sections and writes the first messages: system (see System) and the
// overview followed by the section table.
func (a *Agent) Prepare(rec record.Record, system, overview string) (*Record, error) {
	secs, err := Sections(rec.Data)
	if err != nil {
		return nil, fmt.Errorf("record %s: %w", rec.ID, err)
	}
	r := &Record{rec: rec, sections: secs, byName: map[string]int{}}
	for i, s := range secs {
		r.byName[s.Name] = i
	}
	user := strings.TrimRight(overview, "\n") + "\n\n" + sectionTable(secs)
	r.first = []llm.Message{{Role: llm.RoleSystem, Content: system}, {Role: llm.RoleUser, Content: user}}
	return r, nil
}

// Messages are the first request's messages.
func (r *Record) Messages() []llm.Message { return r.first }

// Tokens is the size of the whole record, summed over its sections.
func (r *Record) Tokens() int {
	n := 0
	for _, s := range r.sections {
		n += s.Tokens
	}
	return n
}

// TurnFunc makes one request of the loop (turn counts from 1), with its retries: it is where
// rate permits, the budget and the accounting of attempts live.
type TurnFunc func(ctx context.Context, msgs []llm.Message, turn int) (llm.Result, error)

// Call is one tool call of a Step and what it got.
type Call struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
	// ResultBytes is the size of the tool's answer; Refused says it was an error the model
	// must fix (not valid JSON, an unknown tool or section, a submit that failed validation).
	ResultBytes int  `json:"result_bytes"`
	Refused     bool `json:"refused,omitempty"`
}

// Step is one turn of a loop, for the transcript.
type Step struct {
	Turn      int       `json:"turn"`
	Calls     []Call    `json:"calls,omitempty"`
	Text      string    `json:"text,omitempty"`
	Usage     llm.Usage `json:"-"`
	Attempts  int       `json:"attempts"`
	LatencyMS int64     `json:"latency_ms"`
	Accepted  bool      `json:"accepted,omitempty"`
}

// Outcome is what a loop did. On success Values and Content are the accepted submit's.
type Outcome struct {
	Values  map[string]any
	Content string
	Model   string
	// Turns counts requests answered; Attempts counts every attempt, retries included.
	Turns    int
	Attempts int
	// ToolCalls counts calls by tool name.
	ToolCalls map[string]int
	Usage     llm.Usage
	Billed    map[llm.Charge]llm.Usage
	Latency   time.Duration
	// Tier is the service tier of the last turn's answer.
	Tier string
}

// nudge is said once to a model that answered with text.
const nudge = "Answer by calling " + ToolSubmit + " with every field; text answers are not read."

// Run works r through the loop: each turn's calls are answered in order, the first submit that
// passes the schema ends it. It returns a *LimitError when a limit ends it first, ErrToolServer
// when an external tool's server failed, and the TurnFunc's error when a request failed for good;
// the Outcome counts what was spent either way. observe, when set, sees each step as it ends.
func (a *Agent) Run(ctx context.Context, r *Record, turn TurnFunc, observe func(Step)) (Outcome, error) {
	out := Outcome{ToolCalls: map[string]int{}, Billed: map[llm.Charge]llm.Usage{}}
	msgs := append([]llm.Message(nil), r.first...)
	nudged := false
	for n := 1; ; n++ {
		if n > a.cfg.MaxTurns {
			return out, &LimitError{Kind: LimitTurns, Detail: fmt.Sprintf("no accepted %s in %d turns (--agent-max-turns)", ToolSubmit, a.cfg.MaxTurns)}
		}
		if used := out.Usage.InputTokens + out.Usage.OutputTokens; a.cfg.MaxTokens > 0 && used >= a.cfg.MaxTokens {
			return out, &LimitError{Kind: LimitTokens, Detail: fmt.Sprintf("%d tokens spent without an accepted %s (--agent-max-tokens %d)", used, ToolSubmit, a.cfg.MaxTokens)}
		}
		res, err := turn(ctx, msgs, n)
		out.Attempts += res.Attempts
		out.Usage = out.Usage.Add(res.Usage)
		for m, u := range res.Billed {
			out.Billed[m] = out.Billed[m].Add(u)
		}
		out.Tier = cmp.Or(res.Tier, out.Tier)
		out.Latency += res.Latency
		if res.Model != "" {
			out.Model = res.Model
		}
		if err != nil {
			return out, err
		}
		out.Turns = n
		step := Step{Turn: n, Usage: res.Usage, Attempts: res.Attempts, LatencyMS: res.Latency.Milliseconds()}
		if len(res.ToolCalls) == 0 {
			step.Text = llm.Clip(res.Content, 500)
			if nudged {
				// A model that writes its answer as text: take it if it is one.
				if vals, err := a.cfg.Schema.Validate([]byte(strings.TrimSpace(res.Content))); err == nil {
					out.Values, out.Content = vals, strings.TrimSpace(res.Content)
					step.Accepted = true
					emit(observe, step)
					return out, nil
				}
				emit(observe, step)
				return out, &LimitError{Kind: LimitNoSubmit, Detail: fmt.Sprintf("answered with text twice instead of calling %s", ToolSubmit)}
			}
			nudged = true
			msgs = append(msgs, llm.Message{Role: llm.RoleAssistant, Content: res.Content}, llm.Message{Role: llm.RoleUser, Content: nudge})
			emit(observe, step)
			continue
		}
		msgs = append(msgs, llm.Message{Role: llm.RoleAssistant, Content: res.Content, ToolCalls: res.ToolCalls})
		for _, c := range res.ToolCalls {
			out.ToolCalls[c.Name]++
			text, refused, vals, err := a.call(ctx, r, c)
			if err != nil {
				step.Calls = append(step.Calls, Call{Name: c.Name, Arguments: llm.Clip(c.Arguments, 2000)})
				emit(observe, step)
				return out, err
			}
			step.Calls = append(step.Calls, Call{Name: c.Name, Arguments: llm.Clip(c.Arguments, 2000), ResultBytes: len(text), Refused: refused})
			if vals != nil {
				out.Values, out.Content = vals, c.Arguments
				step.Accepted = true
				emit(observe, step)
				return out, nil // nothing follows an accepted submit: its result is never sent
			}
			msgs = append(msgs, llm.Message{Role: llm.RoleTool, ToolCallID: c.ID, Content: text})
		}
		emit(observe, step)
	}
}

func emit(observe func(Step), s Step) {
	if observe != nil {
		observe(s)
	}
}

// call answers one tool call: the text for the model, whether it was refused, and for an
// accepted submit its values.
func (a *Agent) call(ctx context.Context, r *Record, c llm.ToolCall) (string, bool, map[string]any, error) {
	bad := func(format string, args ...any) (string, bool, map[string]any, error) {
		return fmt.Sprintf(format, args...), true, nil, nil
	}
	if strings.TrimSpace(c.Arguments) != "" && !json.Valid([]byte(c.Arguments)) {
		return bad("The arguments of %s are not valid JSON (%q). Call it again with a JSON object.", c.Name, llm.Clip(c.Arguments, 80))
	}
	switch c.Name {
	case ToolSubmit:
		vals, err := a.cfg.Schema.Validate([]byte(c.Arguments))
		if err != nil {
			return bad("%s was refused: %v. Fix these fields and call %s again with every field.", ToolSubmit, err, ToolSubmit)
		}
		return "accepted", false, vals, nil
	case ToolListSections:
		return sectionTable(r.sections), false, nil, nil
	case ToolReadSection:
		var args readArgs
		if err := parseArgs(c.Arguments, &args); err != nil {
			return bad("The arguments of %s are wrong (%v); it takes name, offset and limit.", ToolReadSection, err)
		}
		i, ok := r.byName[args.Name]
		if !ok {
			return bad("There is no section named %q. The sections are: %s.", args.Name, strings.Join(r.names(), ", "))
		}
		return r.read(r.sections[i], args), false, nil, nil
	case ToolSearch:
		var args struct {
			Query string `json:"query"`
		}
		if err := parseArgs(c.Arguments, &args); err != nil || strings.TrimSpace(args.Query) == "" {
			return bad("%s takes a non-empty query.", ToolSearch)
		}
		return r.search(args.Query), false, nil, nil
	case ToolLookup:
		var args struct {
			Field string `json:"field"`
		}
		if err := parseArgs(c.Arguments, &args); err != nil {
			return bad("The arguments of %s are wrong (%v); it takes field.", ToolLookup, err)
		}
		d, ok := a.defs[args.Field]
		if !ok {
			return bad("There is no field named %q. The fields are: %s.", args.Field, strings.Join(a.cfg.Schema.Columns(), ", "))
		}
		return lookupText(d, a.props[args.Field]), false, nil, nil
	}
	tb, ok := a.owner[c.Name]
	if !ok {
		names := make([]string, 0, len(a.tools))
		for _, t := range a.tools {
			names = append(names, t.Name)
		}
		return bad("There is no tool named %q. The tools are: %s.", c.Name, strings.Join(names, ", "))
	}
	args := json.RawMessage(c.Arguments)
	if strings.TrimSpace(c.Arguments) == "" {
		args = json.RawMessage("{}")
	}
	text, isErr, err := tb.Call(ctx, c.Name, args)
	if err != nil {
		if ctx.Err() != nil {
			return "", false, nil, ctx.Err()
		}
		return "", false, nil, fmt.Errorf("%w: %w", ErrToolServer, err)
	}
	return text, isErr, nil, nil
}

func (r *Record) names() []string {
	out := make([]string, len(r.sections))
	for i, s := range r.sections {
		out[i] = s.Name
	}
	return out
}

// read is one page of a section. Pages are measured in estimated tokens (CharsPerToken bytes
// each, see Section), so that paging costs no tokenizer pass over the record: a page ends at a
// line or word break near its size, and the offset to read on starts at or a few bytes before
// where it ended, never after.
func (r *Record) read(s Section, args readArgs) string {
	offset, limit := 0, DefaultReadTokens
	if args.Offset != nil {
		offset = max(*args.Offset, 0)
	}
	if args.Limit != nil && *args.Limit > 0 {
		limit = min(*args.Limit, MaxReadTokens)
	}
	if offset >= s.Tokens && s.Tokens > 0 {
		return fmt.Sprintf("Section %s has %d tokens; offset %d is past its end.", s.Name, s.Tokens, offset)
	}
	lo := runeStart(s.Text, offset*tokens.CharsPerToken)
	hi := len(s.Text)
	if want := lo + limit*tokens.CharsPerToken; want < hi {
		hi = breakBefore(s.Text, lo, want)
	}
	end := hi / tokens.CharsPerToken
	if hi == len(s.Text) {
		end = s.Tokens
	}
	head := fmt.Sprintf("Section %s, tokens %d to %d of %d", s.Name, offset, end, s.Tokens)
	if hi < len(s.Text) {
		head += fmt.Sprintf(" (read on with offset %d)", end)
	}
	return head + ":\n" + s.Text[lo:hi]
}

// runeStart is i moved forward to the start of a UTF-8 sequence (at most len(s)).
func runeStart(s string, i int) int {
	i = min(i, len(s))
	for i < len(s) && !utf8.RuneStart(s[i]) {
		i++
	}
	return i
}

// breakBefore is where a page from lo should end near want: the last line break, else the last
// space, in the page's final fifth; else want itself, moved back to a rune start.
func breakBefore(s string, lo, want int) int {
	floor := lo + (want-lo)*4/5
	if i := strings.LastIndexByte(s[floor:want], '\n'); i >= 0 {
		return floor + i + 1
	}
	if i := strings.LastIndexByte(s[floor:want], ' '); i >= 0 {
		return floor + i + 1
	}
	for want > lo && !utf8.RuneStart(s[want]) {
		want--
	}
	return want
}

// search lists the lines that contain query (case-insensitive), or each of its words when the
// phrase is not found.
func (r *Record) search(query string) string {
	q := strings.ToLower(strings.TrimSpace(query))
	type hit struct{ section, line string }
	find := func(match func(string) bool) []hit {
		var hits []hit
		for _, s := range r.sections {
			for _, line := range strings.Split(s.Text, "\n") {
				if match(strings.ToLower(line)) {
					hits = append(hits, hit{s.Name, strings.TrimSpace(line)})
				}
			}
		}
		return hits
	}
	hits := find(func(l string) bool { return strings.Contains(l, q) })
	how := "the phrase"
	if len(hits) == 0 {
		var words []string
		for _, w := range strings.Fields(q) {
			if len(w) >= 3 {
				words = append(words, w)
			}
		}
		if len(words) > 1 {
			hits = find(func(l string) bool {
				for _, w := range words {
					if strings.Contains(l, w) {
						return true
					}
				}
				return false
			})
			how = "any of its words"
		}
	}
	if len(hits) == 0 {
		return fmt.Sprintf("No line of the record mentions %q.", query)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d lines mention %s %q", len(hits), how, query)
	if len(hits) > maxSearchLines {
		fmt.Fprintf(&b, " (the first %d)", maxSearchLines)
		hits = hits[:maxSearchLines]
	}
	b.WriteString(":")
	for _, h := range hits {
		fmt.Fprintf(&b, "\n[%s] %s", h.section, llm.Clip(h.line, 300))
	}
	return b.String()
}
