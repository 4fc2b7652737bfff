// Package prompt renders the messages sent to the model for one record from a Go text/template.
//
// A template either defines two blocks, {{define "system"}}...{{end}} (static instructions, the
// same for every record, so providers can cache that prefix) and {{define "user"}}...{{end}}
// (the record), or is one plain template that becomes the user message with no system message.
//
// The data of the template:
//
//	.ID      the record's ID
//	.Index   the record's 0-based position in the input
//	.Record  the record decoded as maps, numbers as json.Number
//
// A missing key in {{.Record.a.b}} is an error, not "<no value>". Helpers:
//
//	field "a.b.c"      the value at a dotted path ("" for null); an error naming the record and
//	                   the path if absent
//	get "a.b.c"        the value at a dotted path, or "" if absent or null
//	list "a.b"         an array as strings: strings as they are, objects by their "name";
//	                   a single string becomes a one-element list; absent gives an empty list
//	join SEP LIST      the elements of a list (or array value) joined with SEP
//	truncate N TEXT    TEXT cut to N characters, with "…" added when cut
//	at VALUE "a.b"     like get, inside a value (for example the element of a range)
//
// Paths use record.Lookup: dots separate keys, numbers index arrays ("a.0.name").
//
// Templates written in the common subset (text; if, with and range without variables; the
// helpers; or, and, not, print and printf; .ID and .Index) are rendered by walking their parse
// tree directly, with text/template's output and at about half its cost; anything outside the
// subset, and every error, is text/template's own (fast.go).
package prompt
