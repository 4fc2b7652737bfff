package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Field is one key and value of an Ordered object.
type Field struct {
	Key   string
	Value any
}

// Ordered is a JSON object that marshals its keys in slice order. StrictJSON uses it for
// "properties", so the model sees (and writes) the properties in the schema file's order.
type Ordered []Field

// MarshalJSON writes the fields in order.
func (o Ordered) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(f.Key)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(f.Value)
		if err != nil {
			return nil, fmt.Errorf("property %s: %w", f.Key, err)
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// StrictJSON returns the schema in the form OpenAI's strict Structured Outputs accept: an object
// whose properties are all listed in "required", with "additionalProperties": false. A property
// that was optional becomes nullable (type [t, "null"]), so the model answers null instead of
// leaving it out; Validate accepts that null. Enums and descriptions are kept. "maxLength" is not
// among the keywords strict mode accepts, so it is stated in the description instead (and still
// enforced by Validate).
//
// "properties" is an Ordered value: marshal the map with encoding/json to keep the order.
func (s *Schema) StrictJSON() map[string]any {
	props := make(Ordered, 0, len(s.Properties))
	required := make([]string, 0, len(s.Properties))
	for _, p := range s.Properties {
		props = append(props, Field{Key: p.Name, Value: strictProperty(p, p.Nullable || !s.required[p.Name])})
		required = append(required, p.Name)
	}
	out := map[string]any{
		"type":                 "object",
		"properties":           props,
		"required":             required,
		"additionalProperties": false,
	}
	if s.Description != "" {
		out["description"] = s.Description
	}
	return out
}

func strictProperty(p Property, nullable bool) map[string]any {
	m := map[string]any{}
	if nullable {
		m["type"] = []any{p.Type, "null"}
	} else {
		m["type"] = p.Type
	}
	desc := p.Description
	if p.MaxLength > 0 {
		limit := fmt.Sprintf("At most %d characters.", p.MaxLength)
		if desc == "" {
			desc = limit
		} else {
			desc += " (" + limit + ")"
		}
	}
	if desc != "" {
		m["description"] = desc
	}
	if len(p.Enum) > 0 {
		enum := make([]any, 0, len(p.Enum)+1)
		for _, e := range p.Enum {
			enum = append(enum, e)
		}
		if nullable {
			enum = append(enum, nil)
		}
		m["enum"] = enum
	}
	if p.Items != nil {
		m["items"] = strictProperty(*p.Items, p.Items.Nullable)
	}
	return m
}
