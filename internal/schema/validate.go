package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ValidationError lists what is wrong with an answer. It wraps ErrInvalidAnswer.
type ValidationError struct {
	// Problems are short, one-line descriptions, in schema order.
	Problems []string
}

// Error lists the problems on one line.
func (e *ValidationError) Error() string {
	return "invalid answer: " + strings.Join(e.Problems, "; ")
}

// Unwrap returns ErrInvalidAnswer.
func (e *ValidationError) Unwrap() error { return ErrInvalidAnswer }

// maxShown is how many characters of an offending value an error message shows.
const maxShown = 40

// Validate checks an answer against the schema and returns its values, keyed by property name:
// string, int64 (integer), float64 (number), bool, []any (array) or nil (null). Properties the
// answer leaves out are absent from the map.
//
// The answer must be one JSON object with every required property, no other property, values of
// the declared type (an integer must be a whole number), enum values spelled exactly, and strings
// no longer than maxLength characters. null is accepted for nullable properties and for optional
// ones (StrictJSON makes those nullable). Any mismatch returns a *ValidationError.
func (s *Schema) Validate(answer []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(answer))
	dec.UseNumber()
	var raw any
	if err := dec.Decode(&raw); err != nil {
		return nil, invalid(fmt.Sprintf("not valid JSON (%v): %s", err, shortText(string(answer))))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, invalid(fmt.Sprintf("text after the JSON object: %s", shortText(string(answer))))
	}
	obj, ok := raw.(map[string]any)
	if !ok {
		return nil, invalid(fmt.Sprintf("the answer is a JSON %s, not an object", jsonKind(raw)))
	}
	var problems []string
	values := make(map[string]any, len(s.Properties))
	known := make(map[string]bool, len(s.Properties))
	for _, p := range s.Properties {
		known[p.Name] = true
		v, present := obj[p.Name]
		if !present {
			if s.required[p.Name] {
				problems = append(problems, fmt.Sprintf("missing required property %q", p.Name))
			}
			continue
		}
		val, problem := check(p, v, p.Nullable || !s.required[p.Name])
		if problem != "" {
			problems = append(problems, p.Name+": "+problem)
			continue
		}
		values[p.Name] = val
	}
	var unknown []string
	for k := range obj {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		problems = append(problems, fmt.Sprintf("unknown property %s", shortText(k)))
	}
	if len(problems) > 0 {
		return nil, &ValidationError{Problems: problems}
	}
	return values, nil
}

func invalid(problem string) error {
	return &ValidationError{Problems: []string{problem}}
}

// check validates one value and converts it to its Go form.
func check(p Property, v any, nullable bool) (any, string) {
	if v == nil {
		if nullable {
			return nil, ""
		}
		return nil, fmt.Sprintf("null, but a %s is required", p.Type)
	}
	switch p.Type {
	case TypeString:
		s, ok := v.(string)
		if !ok {
			return nil, wrongType(p.Type, v)
		}
		if len(p.Enum) > 0 && !contains(p.Enum, s) {
			return nil, fmt.Sprintf("%s is not one of %s", shortText(s), enumList(p.Enum))
		}
		if p.MaxLength > 0 {
			if n := utf8.RuneCountInString(s); n > p.MaxLength {
				return nil, fmt.Sprintf("%d characters, longer than maxLength %d: %s", n, p.MaxLength, shortText(s))
			}
		}
		return s, ""
	case TypeInteger:
		n, ok := v.(json.Number)
		if !ok {
			return nil, wrongType(p.Type, v)
		}
		if i, err := strconv.ParseInt(n.String(), 10, 64); err == nil {
			return i, ""
		}
		f, err := strconv.ParseFloat(n.String(), 64)
		if err != nil || f != math.Trunc(f) || math.Abs(f) >= 1<<63 {
			return nil, fmt.Sprintf("%s is not a whole number in range", shortText(n.String()))
		}
		return int64(f), ""
	case TypeNumber:
		n, ok := v.(json.Number)
		if !ok {
			return nil, wrongType(p.Type, v)
		}
		f, err := strconv.ParseFloat(n.String(), 64)
		if err != nil {
			return nil, fmt.Sprintf("%s is out of range", shortText(n.String()))
		}
		return f, ""
	case TypeBoolean:
		b, ok := v.(bool)
		if !ok {
			return nil, wrongType(p.Type, v)
		}
		return b, ""
	case TypeArray:
		list, ok := v.([]any)
		if !ok {
			return nil, wrongType(p.Type, v)
		}
		out := make([]any, len(list))
		for i, e := range list {
			val, problem := check(*p.Items, e, p.Items.Nullable)
			if problem != "" {
				return nil, fmt.Sprintf("item %d: %s", i, problem)
			}
			out[i] = val
		}
		return out, ""
	default:
		return nil, fmt.Sprintf("unsupported type %q", p.Type)
	}
}

func wrongType(want string, v any) string {
	return fmt.Sprintf("want %s, got %s %s", want, jsonKind(v), shortJSON(v))
}

func jsonKind(v any) string {
	switch v.(type) {
	case map[string]any, *object:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case json.Number:
		return "number"
	case bool:
		return "boolean"
	case nil:
		return "null"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// shortJSON renders a decoded value as short JSON text.
func shortJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "?"
	}
	return shortText(string(b))
}

// shortText quotes s, cut to maxShown characters.
func shortText(s string) string {
	if utf8.RuneCountInString(s) > maxShown {
		r := []rune(s)
		return strconv.Quote(string(r[:maxShown])) + "…"
	}
	return strconv.Quote(s)
}

// enumList lists allowed values, cut after a few.
func enumList(enum []string) string {
	const show = 8
	if len(enum) <= show {
		return "(" + strings.Join(enum, ", ") + ")"
	}
	return fmt.Sprintf("(%s, … %d more)", strings.Join(enum[:show], ", "), len(enum)-show)
}
