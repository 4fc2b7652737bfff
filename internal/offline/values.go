package offline

import (
	"encoding/json"
	"strings"
	"unicode/utf8"
)

func removeString(list []string, s string) []string {
	out := list[:0:0]
	for _, x := range list {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}

// cut shortens s to at most n characters, ending in "…" when cut.
func cut(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return strings.TrimSpace(string(r[:n-1])) + "…"
}

// str returns a string or number value as text, and "" for anything else.
func str(v any) string {
	switch x := v.(type) {
	case string:
		return strings.TrimSpace(x)
	case json.Number:
		return x.String()
	default:
		return ""
	}
}

// strs returns the strings of an array value.
func strs(v any) []string {
	list, _ := v.([]any)
	var out []string
	for _, e := range list {
		if s := str(e); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// field returns a string field of every object of an array value.
func field(v any, key string) []string {
	list, _ := v.([]any)
	var out []string
	for _, e := range list {
		if m, ok := e.(map[string]any); ok {
			if s := str(m[key]); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// splitList reads a list value of a flat record: an array of strings (or objects with "name"),
// or one string with items separated by ";" or "|".
func splitList(v any) []string {
	if list, ok := v.([]any); ok {
		var out []string
		for _, e := range list {
			if m, ok := e.(map[string]any); ok {
				e = m["name"]
			}
			if s := str(e); s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	var out []string
	for _, part := range strings.FieldsFunc(str(v), func(r rune) bool { return r == ';' || r == '|' }) {
		if p := strings.TrimSpace(part); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// upperSnake spells "Supportive Care" as SUPPORTIVE_CARE.
func upperSnake(s string) string {
	var b strings.Builder
	under := false
	for _, r := range strings.TrimSpace(s) {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			b.WriteString(strings.ToUpper(string(r)))
			under = false
		} else if !under && b.Len() > 0 {
			b.WriteByte('_')
			under = true
		}
	}
	return strings.TrimSuffix(b.String(), "_")
}
