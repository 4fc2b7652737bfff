package fakeai

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strings"
)

// DefaultAnswer builds a schema-valid answer for recordID from schema: an enum value chosen by
// hashing recordID and the property path, "fake answer for <id>" for strings, 1 for numbers,
// true for booleans, and one item for arrays. It follows $ref into $defs and definitions, takes
// the first branch of anyOf/oneOf and the first non-null type of a type list.
func DefaultAnswer(recordID string, schema map[string]any) map[string]any {
	b := builder{id: recordID, root: schema}
	v, _ := b.value(schema, "", 0).(map[string]any)
	if v == nil {
		v = map[string]any{}
	}
	return v
}

type builder struct {
	id   string
	root map[string]any
}

func (b builder) value(s map[string]any, path string, depth int) any {
	if s == nil || depth > 32 {
		return nil
	}
	if ref, ok := s["$ref"].(string); ok {
		return b.value(b.resolve(ref), path, depth+1)
	}
	if c, ok := s["const"]; ok {
		return c
	}
	if enum, ok := s["enum"].([]any); ok && len(enum) > 0 {
		return enum[pick(b.id, path, len(enum))]
	}
	for _, k := range []string{"anyOf", "oneOf", "allOf"} {
		if alts, ok := s[k].([]any); ok {
			for _, a := range alts {
				if am, ok := a.(map[string]any); ok && typeOf(am) != "null" {
					return b.value(am, path, depth+1)
				}
			}
		}
	}
	switch typeOf(s) {
	case "object":
		out := map[string]any{}
		props, _ := s["properties"].(map[string]any)
		for name, p := range props {
			pm, _ := p.(map[string]any)
			out[name] = b.value(pm, path+"/"+name, depth+1)
		}
		return out
	case "array":
		items, _ := s["items"].(map[string]any)
		n := 1
		if mi, ok := number(s["minItems"]); ok && int(mi) > n {
			n = int(mi)
		}
		arr := make([]any, 0, n)
		for range n {
			arr = append(arr, b.value(items, path+"/0", depth+1))
		}
		return arr
	case "string":
		str := "fake answer for " + b.id
		if ml, ok := number(s["maxLength"]); ok && int(ml) < len(str) && ml >= 0 {
			str = str[:int(ml)]
		}
		return str
	case "integer", "number":
		v := 1.0
		if lo, ok := number(s["minimum"]); ok && lo > v {
			v = lo
		}
		if hi, ok := number(s["maximum"]); ok && hi < v {
			v = hi
		}
		return v
	case "boolean":
		return true
	}
	return nil
}

func (b builder) resolve(ref string) map[string]any {
	rest, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil
	}
	var cur any = b.root
	for _, seg := range strings.Split(rest, "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[strings.ReplaceAll(strings.ReplaceAll(seg, "~1", "/"), "~0", "~")]
	}
	m, _ := cur.(map[string]any)
	return m
}

// typeOf returns the schema's type, the first non-null one of a type list, or "object" when
// the schema has properties but no type.
func typeOf(s map[string]any) string {
	switch t := s["type"].(type) {
	case string:
		return t
	case []any:
		for _, x := range t {
			if xs, ok := x.(string); ok && xs != "null" {
				return xs
			}
		}
		if len(t) > 0 {
			return "null"
		}
	}
	if _, ok := s["properties"]; ok {
		return "object"
	}
	return ""
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}

// pick returns a deterministic index in [0,n) for id and path.
func pick(id, path string, n int) int {
	h := fnv.New64a()
	h.Write([]byte(id))
	h.Write([]byte{0})
	h.Write([]byte(path))
	return int(h.Sum64() % uint64(n))
}

// breakAnswer returns answer made invalid against schema: a required property removed or an
// enum property set to a value outside its enum. choice selects among the possible breaks.
func breakAnswer(answer map[string]any, schema map[string]any, choice int) map[string]any {
	out := make(map[string]any, len(answer))
	for k, v := range answer {
		out[k] = v
	}
	type brk struct {
		prop   string
		delete bool
	}
	var breaks []brk
	props, _ := schema["properties"].(map[string]any)
	for name, p := range props {
		if pm, ok := p.(map[string]any); ok {
			if _, ok := pm["enum"]; ok {
				breaks = append(breaks, brk{prop: name})
			}
		}
	}
	req, _ := schema["required"].([]any)
	for _, r := range req {
		if name, ok := r.(string); ok {
			if _, present := out[name]; present {
				breaks = append(breaks, brk{prop: name, delete: true})
			}
		}
	}
	if len(breaks) == 0 {
		out["unexpected_property_from_fakeai"] = true
		return out
	}
	slices.SortFunc(breaks, func(a, b brk) int {
		if c := strings.Compare(a.prop, b.prop); c != 0 {
			return c
		}
		if a.delete == b.delete {
			return 0
		}
		if a.delete {
			return 1
		}
		return -1
	})
	bk := breaks[choice%len(breaks)]
	if bk.delete {
		delete(out, bk.prop)
	} else {
		out[bk.prop] = "not_an_allowed_value"
	}
	return out
}

// noisy returns answer with each enum property of schema replaced, with probability p, by
// another of its values: a model whose answers vary between requests for the same record. The
// draws come from the record, the request's number for it and the property (with seed), so two
// runs over the same records see the same noise.
func noisy(answer, schema map[string]any, p float64, seed int64, id string, nth int) map[string]any {
	out := make(map[string]any, len(answer))
	for k, v := range answer {
		out[k] = v
	}
	props, _ := schema["properties"].(map[string]any)
	for name, pv := range props {
		pm, _ := pv.(map[string]any)
		enum, _ := pm["enum"].([]any)
		if len(enum) < 2 {
			continue
		}
		h := fnv.New64a()
		fmt.Fprintf(h, "%d\x00%s\x00%d\x00%s", seed, id, nth, name)
		rng := rand.New(rand.NewPCG(h.Sum64(), 3))
		if rng.Float64() >= p {
			continue
		}
		cur := out[name]
		for {
			if alt := enum[rng.IntN(len(enum))]; alt != cur {
				out[name] = alt
				break
			}
		}
	}
	return out
}
