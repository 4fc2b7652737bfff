// Package taxonomy holds the default categorization of clinical trials: the answer schema
// (schema.json) and the prompt template (prompt.tmpl), embedded in the binaries. README.md in
// this folder documents every value and the rules of the offline categorizer that fills the same
// schema without a model.
package taxonomy
