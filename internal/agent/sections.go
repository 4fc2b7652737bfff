package agent

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"github.com/trialcat/trialcat/internal/record"
	"github.com/trialcat/trialcat/internal/tokens"
)

// Section is one named part of a record, as the model reads it.
type Section struct {
	Name string
	Text string
	// Tokens is the section's size estimated at tokens.CharsPerToken bytes a token: the table
	// and the pages need sizes the model can reason about, not a tokenizer pass over every
	// record (which costs more CPU than the rest of a turn).
	Tokens int
}

// estimate is the estimated tokens of text.
func estimate(text string) int { return (len(text) + tokens.CharsPerToken - 1) / tokens.CharsPerToken }

// member is one key and value of a JSON object, in the object's order.
type member = record.Member

// Sections cuts a record into the sections the model can read. A ClinicalTrials.gov study is cut
// into its modules (protocolSection.eligibilityModule is "eligibility",
// derivedSection.conditionBrowseModule is "derived.condition_browse"); any other record into its
// top-level fields, an object of objects into one section per inner object. Each section's text
// is the field tree as indented "key: value" lines, in the record's order.
func Sections(data []byte) ([]Section, error) {
	root, err := record.DecodeOrdered(data)
	if err != nil {
		return nil, fmt.Errorf("read the record: %w", err)
	}
	obj, ok := root.([]member)
	if !ok {
		return nil, fmt.Errorf("the record is not a JSON object")
	}
	var out []Section
	seen := map[string]int{}
	add := func(name string, v any) {
		name = snake(name)
		if seen[name]++; seen[name] > 1 {
			name = fmt.Sprintf("%s_%d", name, seen[name])
		}
		var b strings.Builder
		render(&b, v, "")
		text := strings.TrimRight(b.String(), "\n")
		out = append(out, Section{Name: name, Text: text, Tokens: estimate(text)})
	}
	var scalars []member
	for _, m := range obj {
		inner, ok := m.Value.([]member)
		if ok && allObjects(inner) && len(inner) > 0 {
			prefix := strings.TrimSuffix(m.Key, "Section")
			if m.Key == "protocolSection" {
				prefix = ""
			} else {
				prefix = snake(prefix) + "."
			}
			for _, mm := range inner {
				add(prefix+snake(strings.TrimSuffix(mm.Key, "Module")), mm.Value)
			}
			continue
		}
		if _, isObj := m.Value.([]member); !isObj && short(m.Value) {
			scalars = append(scalars, m) // small top-level values share one section
			continue
		}
		add(m.Key, m.Value)
	}
	if len(scalars) > 0 {
		add("fields", scalars)
	}
	return out, nil
}

// short reports whether v is a scalar or a short list of scalars.
func short(v any) bool {
	switch x := v.(type) {
	case string:
		return len(x) <= 200
	case []any:
		n := 0
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				if _, obj := e.([]member); obj {
					return false
				}
			}
			n += len(s)
		}
		return n <= 200
	}
	return true
}

func allObjects(ms []member) bool {
	for _, m := range ms {
		if _, ok := m.Value.([]member); !ok {
			return false
		}
	}
	return true
}

// snake spells a camelCase key in snake_case.
func snake(s string) string {
	var b strings.Builder
	rs := []rune(s)
	for i, r := range rs {
		if unicode.IsUpper(r) {
			if i > 0 && (unicode.IsLower(rs[i-1]) || (i+1 < len(rs) && unicode.IsLower(rs[i+1]) && unicode.IsUpper(rs[i-1]))) && rs[i-1] != '.' && rs[i-1] != '_' {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(r))
			continue
		}
		if r == ' ' || r == '-' {
			r = '_'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// render writes v as indented "key: value" lines.
func render(b *strings.Builder, v any, indent string) {
	switch x := v.(type) {
	case []member:
		for _, m := range x {
			switch mv := m.Value.(type) {
			case []member, []any:
				if s, ok := inlineList(mv); ok {
					fmt.Fprintf(b, "%s%s: %s\n", indent, m.Key, s)
					continue
				}
				fmt.Fprintf(b, "%s%s:\n", indent, m.Key)
				render(b, mv, indent+"  ")
			default:
				writeScalar(b, indent, m.Key+": ", mv)
			}
		}
	case []any:
		for _, e := range x {
			if inner, ok := e.([]member); ok {
				var sub strings.Builder
				render(&sub, inner, indent+"  ")
				s := sub.String()
				b.WriteString(indent + "- " + strings.TrimPrefix(s, indent+"  "))
				continue
			}
			writeScalar(b, indent, "- ", e)
		}
	default:
		writeScalar(b, indent, "", x)
	}
}

// inlineList spells a list of scalars on one line.
func inlineList(v any) (string, bool) {
	list, ok := v.([]any)
	if !ok {
		return "", false
	}
	parts := make([]string, 0, len(list))
	n := 0
	for _, e := range list {
		switch e.(type) {
		case []member, []any:
			return "", false
		}
		s := scalar(e)
		n += len(s)
		if strings.Contains(s, "\n") {
			return "", false
		}
		parts = append(parts, s)
	}
	if n > 300 {
		return "", false
	}
	return strings.Join(parts, ", "), true
}

func writeScalar(b *strings.Builder, indent, label string, v any) {
	s := scalar(v)
	if !strings.Contains(s, "\n") {
		b.WriteString(indent + label + s + "\n")
		return
	}
	b.WriteString(indent + strings.TrimRight(label, " ") + "\n")
	for _, line := range strings.Split(s, "\n") {
		b.WriteString(indent + "  " + line + "\n")
	}
}

func scalar(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return strings.ReplaceAll(x, "\r\n", "\n")
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	}
	return fmt.Sprint(v)
}

// decodeOrdered reads one JSON value keeping each object's key order.
