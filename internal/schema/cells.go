package schema

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ArraySep joins array values in one CSV cell.
const ArraySep = ";"

// Cells renders an answer's values as CSV cells, one per column in Columns order. Missing and
// null values are empty; arrays are joined with ArraySep; numbers are written without exponent
// (1e+06 becomes 1000000); booleans are "true" or "false".
func (s *Schema) Cells(values map[string]any) []string {
	cells := make([]string, len(s.Properties))
	for i, p := range s.Properties {
		cells[i] = cell(values[p.Name])
	}
	return cells
}

func cell(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return formatFloat(x)
	case float32:
		return formatFloat(float64(x))
	case json.Number:
		if i, err := strconv.ParseInt(x.String(), 10, 64); err == nil {
			return strconv.FormatInt(i, 10)
		}
		if f, err := strconv.ParseFloat(x.String(), 64); err == nil {
			return formatFloat(f)
		}
		return x.String()
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = cell(e)
		}
		return strings.Join(parts, ArraySep)
	case []string:
		return strings.Join(x, ArraySep)
	default:
		return fmt.Sprint(x)
	}
}

func formatFloat(f float64) string {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// CheckCell checks a CSV cell written by a person (a reviewer's correction) against the property
// name: the cell is read as the property's type (an array's items joined with ArraySep) and
// validated as an answer's value would be. It returns the cell as Cells would write it.
func (s *Schema) CheckCell(name, text string) (string, error) {
	var p *Property
	for i := range s.Properties {
		if s.Properties[i].Name == name {
			p = &s.Properties[i]
		}
	}
	if p == nil {
		return "", fmt.Errorf("the schema has no field %q (its fields: %s)", name, strings.Join(s.Columns(), ", "))
	}
	text = strings.TrimSpace(text)
	parse := func(q Property, t string) any {
		switch q.Type {
		case TypeInteger, TypeNumber:
			return json.Number(t)
		case TypeBoolean:
			if b, err := strconv.ParseBool(t); err == nil {
				return b
			}
			return t
		}
		return t
	}
	var v any
	if p.Type == TypeArray {
		var list []any
		for _, part := range strings.Split(text, ArraySep) {
			if part = strings.TrimSpace(part); part != "" {
				list = append(list, parse(*p.Items, part))
			}
		}
		v = list
		if list == nil {
			v = []any{}
		}
	} else {
		v = parse(*p, text)
	}
	if p.Type == TypeInteger || p.Type == TypeNumber {
		if _, err := strconv.ParseFloat(text, 64); err != nil {
			return "", fmt.Errorf("%q is not a number", text)
		}
	}
	val, problem := check(*p, v, p.Nullable)
	if problem != "" {
		return "", fmt.Errorf("%s", problem)
	}
	return cell(val), nil
}
