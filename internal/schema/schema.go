package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/trialcat/trialcat/internal/exitcode"
	"github.com/trialcat/trialcat/internal/results"
)

// Sentinel errors.
var (
	// ErrInvalidAnswer marks an answer that does not match the schema. Validate returns it
	// wrapped in a *ValidationError.
	ErrInvalidAnswer = errors.New("answer does not match the schema")
)

// Property types.
const (
	TypeString  = "string"
	TypeInteger = "integer"
	TypeNumber  = "number"
	TypeBoolean = "boolean"
	TypeArray   = "array"
)

// DefaultName is the schema name used when the file has no usable "title".
const DefaultName = "categorization"

// maxNameLen is the longest schema name OpenAI accepts.
const maxNameLen = 64

// Property is one answer field.
type Property struct {
	// Name is the property name and the CSV column.
	Name string
	// Type is one of TypeString, TypeInteger, TypeNumber, TypeBoolean, TypeArray.
	Type string
	// Enum lists the allowed values of a string property; empty means any string.
	Enum []string
	// Items describes the elements of an array property; nil for other types.
	Items *Property
	// Description tells the model what the property means.
	Description string
	// Nullable is set when the type is written as [type, "null"].
	Nullable bool
	// MaxLength bounds a string's length in characters; 0 means no bound.
	MaxLength int
}

// Schema is a parsed answer schema.
type Schema struct {
	// Name comes from the file's "title", reduced to [a-zA-Z0-9_-]; DefaultName when absent.
	Name string
	// Description is the file's top-level "description", if any.
	Description string
	// Properties are in the order of the file.
	Properties []Property
	// Required lists the properties an answer must have, in the order of the file.
	Required []string

	source   string
	required map[string]bool
}

// Source names where the schema came from, as given to Parse.
func (s *Schema) Source() string { return s.source }

// IsRequired reports whether the named property is listed in "required".
func (s *Schema) IsRequired(name string) bool { return s.required[name] }

// Categories returns the names of the enum properties, in order: the fields worth comparing
// between label sets, and those --votes reports a confidence for.
func (s *Schema) Categories() []string {
	var out []string
	for _, p := range s.Properties {
		if len(p.Enum) > 0 {
			out = append(out, p.Name)
		}
	}
	return out
}

// Columns returns the property names in order: the schema's CSV columns.
func (s *Schema) Columns() []string {
	cols := make([]string, len(s.Properties))
	for i, p := range s.Properties {
		cols[i] = p.Name
	}
	return cols
}

// Parse reads a schema file. source names the file in errors. Every error wraps
// exitcode.ErrUsage and says what to change.
func Parse(data []byte, source string) (*Schema, error) {
	p := &parser{source: source, data: bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))}
	s, err := p.parse()
	if err != nil {
		return nil, err
	}
	return s, nil
}

type parser struct {
	source string
	data   []byte
}

// errorf reports a problem in the schema file.
func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("schema %s: %s: %w", p.source, fmt.Sprintf(format, args...), exitcode.ErrUsage)
}

// object is a JSON object that remembers the order of its keys.
type object struct {
	keys []string
	vals map[string]any
}

// topKeywords are the keywords accepted at the top level of a schema.
func topKeywords() []string {
	return []string{"$schema", "$id", "$comment", "title", "description", "type", "properties", "required", "additionalProperties"}
}

// propKeywords are the keywords accepted in a property; annotations ($comment, title, default,
// examples) are accepted and ignored.
func propKeywords() []string {
	return []string{"$comment", "title", "description", "type", "enum", "items", "maxLength", "default", "examples"}
}

// sanitizeName keeps [a-zA-Z0-9_-], turns every other run of characters into one "_", trims
// leading and trailing "_" and cuts the result to maxNameLen bytes.
func sanitizeName(s string) string {
	var b strings.Builder
	under := false
	for _, r := range s {
		if r == '_' || r == '-' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			under = false
			continue
		}
		if !under {
			b.WriteByte('_')
			under = true
		}
	}
	name := strings.Trim(b.String(), "_")
	if len(name) > maxNameLen {
		name = name[:maxNameLen]
	}
	return name
}

func (p *parser) parse() (*Schema, error) {
	dec := json.NewDecoder(bytes.NewReader(p.data))
	dec.UseNumber()
	v, err := p.decodeValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, p.errorf("unexpected data after the schema object at %s; the file must hold one JSON object", p.position(dec.InputOffset()))
	}
	top, ok := v.(*object)
	if !ok {
		return nil, p.errorf("the schema is a JSON %s, not an object; write {\"type\": \"object\", \"properties\": {...}}", jsonKind(v))
	}
	for _, k := range top.keys {
		if !contains(topKeywords(), k) {
			return nil, p.errorf("unsupported keyword %q at the top level (supported: %s)", k, strings.Join(topKeywords(), ", "))
		}
	}
	s := &Schema{Name: DefaultName, source: p.source, required: map[string]bool{}}
	if t, ok := top.vals["type"]; ok && t != "object" {
		return nil, p.errorf("top-level \"type\" is %s; it must be \"object\"", show(t))
	}
	if t, ok := top.vals["title"]; ok {
		ts, ok := t.(string)
		if !ok {
			return nil, p.errorf("\"title\" must be a string")
		}
		if name := sanitizeName(ts); name != "" {
			s.Name = name
		}
	}
	if d, ok := top.vals["description"]; ok {
		ds, ok := d.(string)
		if !ok {
			return nil, p.errorf("\"description\" must be a string")
		}
		s.Description = ds
	}
	if ap, ok := top.vals["additionalProperties"]; ok && ap != false {
		return nil, p.errorf("\"additionalProperties\" must be false or absent: answers may only hold the listed properties")
	}
	pv, ok := top.vals["properties"]
	if !ok {
		return nil, p.errorf("no \"properties\": list the answer fields under \"properties\"")
	}
	props, ok := pv.(*object)
	if !ok {
		return nil, p.errorf("\"properties\" is a JSON %s; it must be an object mapping names to property schemas", jsonKind(pv))
	}
	if len(props.keys) == 0 {
		return nil, p.errorf("\"properties\" is empty; list at least one answer field")
	}
	reserved := results.Bookkeeping() // the columns the results files add after the schema's
	for _, name := range props.keys {
		if strings.TrimSpace(name) == "" {
			return nil, p.errorf("a property has an empty name")
		}
		for _, r := range reserved {
			if strings.EqualFold(name, r) {
				return nil, p.errorf("property %q has the name of a column the results files add (%s); rename it", name, strings.Join(reserved, ", "))
			}
		}
		prop, err := p.property(name, props.vals[name], false)
		if err != nil {
			return nil, err
		}
		s.Properties = append(s.Properties, prop)
	}
	if rv, ok := top.vals["required"]; ok {
		list, ok := rv.([]any)
		if !ok {
			return nil, p.errorf("\"required\" must be an array of property names")
		}
		for _, r := range list {
			name, ok := r.(string)
			if !ok {
				return nil, p.errorf("\"required\" holds %s; it must hold property names (strings)", show(r))
			}
			if _, known := props.vals[name]; !known {
				return nil, p.errorf("\"required\" names %q, which is not under \"properties\"", name)
			}
			if s.required[name] {
				return nil, p.errorf("\"required\" names %q twice", name)
			}
			s.required[name] = true
		}
		for _, prop := range s.Properties {
			if s.required[prop.Name] {
				s.Required = append(s.Required, prop.Name)
			}
		}
	}
	return s, nil
}

// property parses one property schema; item is set for the "items" of an array.
func (p *parser) property(name string, v any, item bool) (Property, error) {
	where := fmt.Sprintf("property %q", name)
	if item {
		where = fmt.Sprintf("the items of property %q", name)
	}
	obj, ok := v.(*object)
	if !ok {
		return Property{}, p.errorf("%s is a JSON %s; it must be an object such as {\"type\": \"string\"}", where, jsonKind(v))
	}
	prop := Property{Name: name}
	if d, ok := obj.vals["description"]; ok {
		ds, ok := d.(string)
		if !ok {
			return Property{}, p.errorf("%s: \"description\" must be a string", where)
		}
		prop.Description = ds
	}
	tv, hasType := obj.vals["type"]
	switch t := tv.(type) {
	case nil:
		if hasType {
			return Property{}, p.errorf("%s: \"type\" is null; give a type such as \"string\"", where)
		}
		if _, hasEnum := obj.vals["enum"]; !hasEnum {
			return Property{}, p.errorf("%s has no \"type\"; give one of string, integer, number, boolean, array", where)
		}
		prop.Type = TypeString
	case string:
		prop.Type = t
	case []any:
		var types []string
		for _, x := range t {
			xs, ok := x.(string)
			if !ok {
				return Property{}, p.errorf("%s: \"type\" holds %s; types are strings", where, show(x))
			}
			if xs == "null" {
				prop.Nullable = true
				continue
			}
			types = append(types, xs)
		}
		if len(types) != 1 {
			return Property{}, p.errorf("%s: \"type\" %s is not supported; use one type, or [type, \"null\"] for a value that may be null", where, show(tv))
		}
		prop.Type = types[0]
	default:
		return Property{}, p.errorf("%s: \"type\" must be a string or [type, \"null\"]", where)
	}
	switch prop.Type {
	case TypeString, TypeInteger, TypeNumber, TypeBoolean:
	case TypeArray:
		if item {
			return Property{}, p.errorf("%s: arrays of arrays are not supported; use an array of strings", where)
		}
	case "object":
		return Property{}, p.errorf("%s: nested objects are not supported; make each inner field a top-level property", where)
	case "null":
		return Property{}, p.errorf("%s: type \"null\" alone is not supported; use [type, \"null\"]", where)
	default:
		return Property{}, p.errorf("%s: unsupported type %q (use string, integer, number, boolean or array)", where, prop.Type)
	}
	for _, k := range obj.keys {
		if !contains(propKeywords(), k) {
			return Property{}, p.errorf("%s: unsupported keyword %q (supported: type, enum, items, description, maxLength)", where, k)
		}
	}
	if ev, ok := obj.vals["enum"]; ok {
		if prop.Type != TypeString {
			return Property{}, p.errorf("%s: \"enum\" is only supported for strings, and the type is %s", where, prop.Type)
		}
		list, ok := ev.([]any)
		if !ok {
			return Property{}, p.errorf("%s: \"enum\" must be an array of strings", where)
		}
		seen := map[string]bool{}
		for _, e := range list {
			if e == nil && prop.Nullable {
				continue
			}
			es, ok := e.(string)
			if !ok {
				return Property{}, p.errorf("%s: \"enum\" holds %s; only strings are supported", where, show(e))
			}
			if seen[es] {
				return Property{}, p.errorf("%s: \"enum\" lists %q twice", where, es)
			}
			seen[es] = true
			prop.Enum = append(prop.Enum, es)
		}
		if len(prop.Enum) == 0 {
			return Property{}, p.errorf("%s: \"enum\" is empty; list the allowed values or drop \"enum\"", where)
		}
	}
	if mv, ok := obj.vals["maxLength"]; ok {
		if prop.Type != TypeString {
			return Property{}, p.errorf("%s: \"maxLength\" applies only to strings, and the type is %s", where, prop.Type)
		}
		n, ok := mv.(json.Number)
		i, err := n.Int64()
		if !ok || err != nil || i < 1 || i > 1<<31-1 {
			return Property{}, p.errorf("%s: \"maxLength\" must be a positive whole number, not %s", where, show(mv))
		}
		prop.MaxLength = int(i)
	}
	iv, hasItems := obj.vals["items"]
	switch {
	case prop.Type == TypeArray && !hasItems:
		return Property{}, p.errorf("%s is an array without \"items\"; add \"items\": {\"type\": \"string\"}", where)
	case prop.Type == TypeArray:
		it, err := p.property(name, iv, true)
		if err != nil {
			return Property{}, err
		}
		prop.Items = &it
	case hasItems:
		return Property{}, p.errorf("%s: \"items\" applies only to arrays, and the type is %s", where, prop.Type)
	}
	return prop, nil
}

// decodeValue decodes one JSON value, keeping the key order of objects.
func (p *parser) decodeValue(dec *json.Decoder) (any, error) {
	start := dec.InputOffset()
	tok, err := dec.Token()
	if err != nil {
		return nil, p.syntaxError(dec, start, err)
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			obj := &object{vals: map[string]any{}}
			for dec.More() {
				kstart := dec.InputOffset()
				kt, err := dec.Token()
				if err != nil {
					return nil, p.syntaxError(dec, kstart, err)
				}
				key, ok := kt.(string)
				if !ok {
					return nil, p.errorf("invalid JSON at %s: expected a key", p.position(kstart))
				}
				if _, dup := obj.vals[key]; dup {
					return nil, p.errorf("key %q appears twice in one object at %s", key, p.position(kstart))
				}
				v, err := p.decodeValue(dec)
				if err != nil {
					return nil, err
				}
				obj.keys = append(obj.keys, key)
				obj.vals[key] = v
			}
			if _, err := dec.Token(); err != nil {
				return nil, p.syntaxError(dec, dec.InputOffset(), err)
			}
			return obj, nil
		case '[':
			list := []any{}
			for dec.More() {
				v, err := p.decodeValue(dec)
				if err != nil {
					return nil, err
				}
				list = append(list, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, p.syntaxError(dec, dec.InputOffset(), err)
			}
			return list, nil
		default:
			return nil, p.errorf("invalid JSON at %s: unexpected %q", p.position(start), t.String())
		}
	default:
		return tok, nil
	}
}

func (p *parser) syntaxError(dec *json.Decoder, offset int64, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		offset = se.Offset
	} else if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		if len(bytes.TrimSpace(p.data)) == 0 {
			return p.errorf("the file is empty; it must hold a JSON object")
		}
		return p.errorf("invalid JSON: the file ends early (an unclosed { or [ ?)")
	}
	return p.errorf("invalid JSON at %s: %v", p.position(offset), err)
}

// position turns a byte offset into "line L, column C".
func (p *parser) position(offset int64) string {
	if offset > int64(len(p.data)) {
		offset = int64(len(p.data))
	}
	before := p.data[:offset]
	line := bytes.Count(before, []byte("\n")) + 1
	col := int(offset) - bytes.LastIndexByte(before, '\n')
	return fmt.Sprintf("line %d, column %d", line, col)
}

// show renders a decoded value briefly for an error message.
func show(v any) string {
	switch x := v.(type) {
	case *object:
		return "an object"
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = show(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case string:
		return fmt.Sprintf("%q", x)
	case nil:
		return "null"
	default:
		return fmt.Sprint(x)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
