package agent

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/trialcat/trialcat/internal/llm"
	"github.com/trialcat/trialcat/internal/schema"
	"github.com/trialcat/trialcat/internal/taxonomy"
	"github.com/trialcat/trialcat/internal/textfmt"
)

// The built-in tools.
const (
	ToolListSections = "list_sections"
	ToolReadSection  = "read_section"
	ToolSearch       = "search_record"
	ToolLookup       = "lookup_category"
	ToolSubmit       = "submit_categorization"
)

// Paging of read_section, in tokens.
const (
	DefaultReadTokens = 1500
	MaxReadTokens     = 4000
)

// maxSearchLines bounds search_record's answer.
const maxSearchLines = 20

// Builtins lists the built-in tools' names, submit last.
func Builtins() []string {
	return []string{ToolListSections, ToolReadSection, ToolSearch, ToolLookup, ToolSubmit}
}

func object(props map[string]any, required ...string) map[string]any {
	if required == nil {
		required = []string{}
	}
	return map[string]any{"type": "object", "properties": props, "required": required, "additionalProperties": false}
}

// builtinTools are the definitions of the built-in tools for sch: strict, and the same for every
// record of a run, so that they sit in the cached prefix.
func builtinTools(sch *schema.Schema) []llm.Tool {
	return []llm.Tool{
		{Name: ToolListSections, Strict: true, Parameters: object(map[string]any{}),
			Description: "List the record's sections with their sizes in tokens."},
		{Name: ToolReadSection, Strict: true, Parameters: object(map[string]any{
			"name":   map[string]any{"type": "string", "description": "The section's name, as listed."},
			"offset": map[string]any{"type": []any{"integer", "null"}, "description": "Where to start, in tokens; null for the start."},
			"limit":  map[string]any{"type": []any{"integer", "null"}, "description": fmt.Sprintf("How many tokens to read; null for %d, at most %d.", DefaultReadTokens, MaxReadTokens)},
		}, "name", "offset", "limit"),
			Description: "Read one section of the record, a page at a time."},
		{Name: ToolSearch, Strict: true, Parameters: object(map[string]any{
			"query": map[string]any{"type": "string", "description": "A word or phrase; matching is case-insensitive."},
		}, "query"),
			Description: "Find the lines of the record that mention a word or phrase, with the section of each."},
		{Name: ToolLookup, Strict: true, Parameters: object(map[string]any{
			"field": map[string]any{"type": "string", "enum": toAny(sch.Columns()), "description": "The answer field."},
		}, "field"),
			Description: "The allowed values of one answer field and what each means."},
		{Name: ToolSubmit, Strict: true, Parameters: sch.StrictJSON(),
			Description: "Submit the categorization of this record: every field, values spelled exactly as allowed. Call it once, when you have decided."},
	}
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// Definitions are what lookup_category says about each field of sch: the default prompt's
// definitions for a field that has the default's name and values, else the schema's own
// description and allowed values.
func Definitions(sch *schema.Schema) map[string]taxonomy.Definition {
	def := taxonomy.Definitions()
	out := map[string]taxonomy.Definition{}
	for _, p := range sch.Properties {
		if d, ok := def[p.Name]; ok && sameValues(d, p) {
			out[p.Name] = d
			continue
		}
		d := taxonomy.Definition{Field: p.Name, Summary: p.Description}
		enum := p.Enum
		if p.Items != nil {
			enum = p.Items.Enum
		}
		for _, e := range enum {
			d.Values = append(d.Values, taxonomy.Value{Name: e})
		}
		if d.Summary == "" {
			d.Summary = "(the schema does not describe this field)"
		}
		out[p.Name] = d
	}
	return out
}

func sameValues(d taxonomy.Definition, p schema.Property) bool {
	names := make([]string, len(d.Values))
	for i, v := range d.Values {
		names[i] = v.Name
	}
	return slices.Equal(names, p.Enum)
}

// sectionTable is the table of sections the overview ends with.
func sectionTable(secs []Section) string {
	var b strings.Builder
	b.WriteString("Sections of this record (read them with read_section; sizes in tokens):")
	for _, s := range secs {
		fmt.Fprintf(&b, "\n- %s (%s tokens)", s.Name, textfmt.Thousands(int64(s.Tokens)))
	}
	return b.String()
}

// lookupText is lookup_category's answer for d.
func lookupText(d taxonomy.Definition, p schema.Property) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", d.Field, d.Summary)
	if p.Type == schema.TypeArray {
		b.WriteString("\nA list of values.")
	}
	if len(d.Values) > 0 {
		b.WriteString("\nAllowed values:")
		for _, v := range d.Values {
			if v.Meaning == "" {
				fmt.Fprintf(&b, "\n- %s", v.Name)
			} else {
				fmt.Fprintf(&b, "\n- %s: %s", v.Name, v.Meaning)
			}
		}
	} else if p.MaxLength > 0 {
		fmt.Fprintf(&b, "\nFree text of at most %d characters.", p.MaxLength)
	}
	for _, r := range d.Rules {
		b.WriteString("\n" + r)
	}
	return b.String()
}

// readArgs are read_section's arguments.
type readArgs struct {
	Name   string `json:"name"`
	Offset *int   `json:"offset"`
	Limit  *int   `json:"limit"`
}

// parseArgs reads a call's arguments into v, strictly: unknown fields are refused.
func parseArgs(raw string, v any) error {
	if strings.TrimSpace(raw) == "" {
		raw = "{}"
	}
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("text after the JSON object")
	}
	return nil
}
