package record

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Record is one input record.
type Record struct {
	// Index is the 0-based position of the record in the input.
	Index int64
	// ID is the record's identifier, never empty.
	ID string
	// Data is the record as a JSON object. CSV rows become objects of strings.
	Data json.RawMessage
}

// DefaultIDFields are the fields searched, in order, when no --id-field is given.
var DefaultIDFields = []string{"nct_id", "nctId", "NCTId", "protocolSection.identificationModule.nctId"}

// Lookup returns the value at a dotted path ("a.b.0.c") in a decoded JSON value, and whether it
// was found. Numeric segments index arrays.
func Lookup(v any, path string) (any, bool) {
	cur := v
	for _, seg := range strings.Split(path, ".") {
		switch c := cur.(type) {
		case map[string]any:
			next, ok := c[seg]
			if !ok {
				return nil, false
			}
			cur = next
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// Decode decodes a record's JSON into generic maps, keeping numbers as json.Number.
func Decode(data []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("record is not a JSON object")
	}
	return m, nil
}

// IDOf finds the record's ID: at idField when given, else at the first of DefaultIDFields present.
// Strings are trimmed; numbers are spelled as in the input. It returns "" when no ID is found.
func IDOf(m map[string]any, idField string) string {
	fields := DefaultIDFields
	if idField != "" {
		fields = []string{idField}
	}
	for _, f := range fields {
		v, ok := Lookup(m, f)
		if !ok {
			continue
		}
		switch x := v.(type) {
		case string:
			return strings.TrimSpace(x)
		case json.Number:
			return x.String()
		}
	}
	return ""
}

// ContentHash is the hex SHA-256 of a record's JSON with insignificant space removed: two
// copies of a record hash alike however they were indented, and any change to a value changes
// it. --since-run and drift compare records across runs by it.
func ContentHash(data []byte) string {
	var b bytes.Buffer
	if err := json.Compact(&b, data); err != nil {
		b.Reset()
		b.Write(data)
	}
	s := sha256.Sum256(b.Bytes())
	return hex.EncodeToString(s[:])
}
