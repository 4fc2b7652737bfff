package fakeai

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// AgentConfig sets how the server answers a request that offers tools: like a model working
// through a record, it reads one or two of the sections the overview lists (read_section),
// sometimes two at once (parallel tool calls), then calls the submit tool with a schema-valid
// answer. Its faults are drawn per turn from the record's ID and the turn's number, so a rerun
// over the same records sees the same conversation.
type AgentConfig struct {
	// RateBrokenArgs is the share of turns whose tool call's arguments are not valid JSON.
	RateBrokenArgs float64
	// RateUnknownTool is the share of turns that call a tool nobody offered.
	RateUnknownTool float64
	// RateText is the share of turns answered with text instead of a tool call.
	RateText float64
	// RateSchemaBreak is the share of submit calls whose arguments break the schema.
	RateSchemaBreak float64
	// RateNeverSubmit is the share of records (by ID) whose model never submits: it reads
	// section after section.
	RateNeverSubmit float64
	// ToolFirst, when set, is called first, once per record, if it is offered: with arguments
	// {"name": <the first intervention on the overview's "Interventions:" lines>}. Tests use it
	// to see an MCP server's tool called and its answer reach the model.
	ToolFirst string
	// OnToolResult, when set, sees each tool message of a conversation the server receives
	// with the name of the call it answers (tests check that a tool's answer reached the model).
	OnToolResult func(recordID, tool, content string)
}

// Submit tools are those whose name starts with this.
const submitPrefix = "submit"

// sectionLine matches a line of the overview's section table: "- name (123 tokens)".
var sectionLine = regexp.MustCompile(`^- ([A-Za-z0-9_.\-]+) \(([0-9,]+) tokens?\)`)

// agentTurn is the answer to a request with tools: tool calls, or text.
type agentTurn struct {
	calls []ToolCall
	text  string
	kind  string
}

// Kinds of agent answers counted in Stats.Answers (beside KindOK for a well-formed call).
const (
	KindToolBrokenArgs  = "tool_broken_args"
	KindToolUnknown     = "tool_unknown"
	KindToolText        = "tool_text"
	KindToolSchemaBreak = "tool_schema_break"
)

// agentAnswer decides the next turn of the conversation in req for record id.
func (s *Server) agentAnswer(id string, req ChatRequest, seq int64) agentTurn {
	cfg := s.cfg.Agent
	turn := 0
	submitRefused := false
	calledFirst := false
	read := map[string]bool{}
	callsByID := map[string]string{}
	for _, m := range req.Messages {
		if m.Role == "assistant" {
			turn++
			for _, c := range m.ToolCalls {
				callsByID[c.ID] = c.Function.Name
				if c.Function.Name == cfg.ToolFirst {
					calledFirst = true
				}
				var a struct {
					Name string `json:"name"`
				}
				if c.Function.Name == "read_section" && json.Unmarshal([]byte(c.Function.Arguments), &a) == nil {
					read[a.Name] = true
				}
			}
		}
		if m.Role == "tool" && strings.HasPrefix(callsByID[m.ToolCallID], submitPrefix) {
			submitRefused = true // an accepted submit ends the loop: an answered one was refused
		}
		if m.Role == "tool" && cfg.OnToolResult != nil {
			// Each request repeats the conversation: a tool's answer is seen once per later turn.
			cfg.OnToolResult(id, callsByID[m.ToolCallID], m.Text())
		}
	}
	draw := func(what string) float64 {
		h := fnv.New64a()
		fmt.Fprintf(h, "%d\x00%s\x00%s\x00%d", s.cfg.Seed, id, what, turn)
		return rand.New(rand.NewPCG(h.Sum64(), 1)).Float64()
	}
	mk := func(name string, args string, n int) ToolCall {
		c := ToolCall{ID: fmt.Sprintf("call_%d_%d_%d", seq, turn, n), Type: "function"}
		c.Function.Name, c.Function.Arguments = name, args
		return c
	}
	submit := ""
	offered := map[string]ToolDef{}
	for _, t := range req.Tools {
		offered[t.Function.Name] = t
		if submit == "" && strings.HasPrefix(t.Function.Name, submitPrefix) {
			submit = t.Function.Name
		}
	}
	switch u := draw("fault"); {
	case u < cfg.RateText:
		return agentTurn{text: "Having read the record, I believe this is a treatment trial.", kind: KindToolText}
	case u < cfg.RateText+cfg.RateBrokenArgs:
		return agentTurn{calls: []ToolCall{mk("read_section", `{"name": "eligib`, 0)}, kind: KindToolBrokenArgs}
	case u < cfg.RateText+cfg.RateBrokenArgs+cfg.RateUnknownTool:
		return agentTurn{calls: []ToolCall{mk("fetch_full_text", `{"url": "https://example.org"}`, 0)}, kind: KindToolUnknown}
	}
	sections := overviewSections(req)
	if _, ok := offered[cfg.ToolFirst]; ok && cfg.ToolFirst != "" && !calledFirst {
		args, _ := json.Marshal(map[string]string{"name": firstIntervention(req)})
		return agentTurn{calls: []ToolCall{mk(cfg.ToolFirst, string(args), 0)}, kind: KindOK}
	}
	h0 := fnv.New64a()
	fmt.Fprintf(h0, "%d\x00%s\x00never", s.cfg.Seed, id)
	neverSubmit := rand.New(rand.NewPCG(h0.Sum64(), 1)).Float64() < cfg.RateNeverSubmit
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\x00reads", id)
	reads := 1 + int(h.Sum64()%2)
	parallel := h.Sum64()%4 == 1
	var unread []string
	for _, sec := range sections {
		if !read[sec] {
			unread = append(unread, sec)
		}
	}
	readArgs := func(name string) string {
		b, _ := json.Marshal(map[string]any{"name": name, "offset": nil, "limit": nil})
		return string(b)
	}
	if _, ok := offered["read_section"]; ok && (neverSubmit || (len(read) < reads && len(unread) > 0 && !submitRefused)) {
		if len(unread) == 0 {
			unread = append(unread, sections...)
		}
		if len(unread) == 0 {
			return agentTurn{calls: []ToolCall{mk("list_sections", "{}", 0)}, kind: KindOK}
		}
		calls := []ToolCall{mk("read_section", readArgs(unread[0]), 0)}
		if parallel && reads == 2 && len(unread) > 1 && len(read) == 0 {
			calls = append(calls, mk("read_section", readArgs(unread[1]), 1))
		}
		return agentTurn{calls: calls, kind: KindOK}
	}
	if submit == "" {
		return agentTurn{text: "I have no way to submit an answer.", kind: KindToolText}
	}
	params := offered[submit].Function.Parameters
	var answer map[string]any
	if s.cfg.Answer != nil {
		answer = s.cfg.Answer(id, req)
	} else {
		answer = DefaultAnswer(id, params)
	}
	kind := KindOK
	if !submitRefused && draw("schema") < cfg.RateSchemaBreak {
		answer = breakAnswer(answer, params, int(draw("choice")*1e6))
		kind = KindToolSchemaBreak
	}
	b, _ := json.Marshal(answer)
	return agentTurn{calls: []ToolCall{mk(submit, string(b), 0)}, kind: kind}
}

// overviewSections lists the section names of the first user message's section table, largest
// first (ties in table order).
func overviewSections(req ChatRequest) []string {
	type sec struct {
		name string
		size int
	}
	var secs []sec
	for _, m := range req.Messages {
		if m.Role != "user" {
			continue
		}
		for _, line := range strings.Split(m.Text(), "\n") {
			if g := sectionLine.FindStringSubmatch(strings.TrimSpace(line)); g != nil {

				n, _ := strconv.Atoi(strings.ReplaceAll(g[2], ",", ""))
				secs = append(secs, sec{g[1], n})
			}
		}
		break
	}
	slices.SortStableFunc(secs, func(a, b sec) int { return b.size - a.size })
	out := make([]string, len(secs))
	for i, s := range secs {
		out[i] = s.name
	}
	return out
}

// firstIntervention is the name on the first "- TYPE: name" line after "Interventions:" in the
// first user message, or "".
func firstIntervention(req ChatRequest) string {
	for _, m := range req.Messages {
		if m.Role != "user" {
			continue
		}
		in := false
		for _, line := range strings.Split(m.Text(), "\n") {
			line = strings.TrimSpace(line)
			if strings.HasPrefix(line, "Interventions:") {
				in = true
				continue
			}
			if in {
				if rest, ok := strings.CutPrefix(line, "- "); ok {
					if _, name, ok := strings.Cut(rest, ": "); ok {
						return name
					}
					return rest
				}
				return ""
			}
		}
		return ""
	}
	return ""
}
