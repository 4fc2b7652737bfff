package taxonomy

import (
	_ "embed"
	"strings"
)

//go:embed agent.tmpl
var agentText string

// AgentPrompt returns the default template of an agent run (--agent): its "system" block states
// the task and its "user" block is the compact overview of a record; the values' definitions are
// not in it, the model looks them up (Definitions).
func AgentPrompt() string { return agentText }

// Value is one allowed value of a field and what it means.
type Value struct {
	Name    string `json:"value"`
	Meaning string `json:"meaning"`
}

// Definition is what the default prompt tells the model about one field: a line saying what the
// field is, each value with its meaning, and the rules that follow the list.
type Definition struct {
	Field   string   `json:"field"`
	Summary string   `json:"summary"`
	Values  []Value  `json:"values,omitempty"`
	Rules   []string `json:"rules,omitempty"`
}

// Definitions are the fields of the default schema as the default prompt's system block defines
// them, keyed by field. They are read from prompt.tmpl itself, so the one-shot prompt and an
// agent's lookup_category tool can never tell the model two different things.
func Definitions() map[string]Definition {
	system := promptText
	if i := strings.Index(system, `{{define "system"}}`); i >= 0 {
		system = system[i+len(`{{define "system"}}`):]
	}
	if i := strings.Index(system, "{{end}}"); i >= 0 {
		system = system[:i]
	}
	fields := map[string]bool{}
	for _, p := range MustSchema().Properties {
		fields[p.Name] = true
	}
	out := map[string]Definition{}
	var cur *Definition
	flush := func() {
		if cur != nil {
			out[cur.Field] = *cur
			cur = nil
		}
	}
	for _, line := range strings.Split(system, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			flush()
			continue
		}
		if name, rest, ok := strings.Cut(line, ": "); ok && fields[name] && cur == nil {
			cur = &Definition{Field: name, Summary: strings.TrimSuffix(strings.TrimSpace(rest), " Pick one:")}
			continue
		}
		if cur == nil {
			continue
		}
		if item, ok := strings.CutPrefix(line, "- "); ok {
			if v, meaning, ok := strings.Cut(item, ": "); ok {
				cur.Values = append(cur.Values, Value{Name: v, Meaning: meaning})
				continue
			}
		}
		cur.Rules = append(cur.Rules, line)
	}
	flush()
	return out
}
