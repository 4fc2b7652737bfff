// Package schema reads the JSON Schema subset that describes an answer: a flat object whose
// properties are strings, integers, numbers, booleans or arrays of those, optionally with enums,
// descriptions and a maximum string length.
//
// One parsed Schema drives three things: the schema sent to the model for Structured Outputs
// (StrictJSON), the check of every answer the model returns (Validate), and the CSV columns the
// answers are written to (Columns and Cells). Properties keep the order of the schema file, so
// the CSV columns and the order in which the model writes its answer follow the file.
package schema
