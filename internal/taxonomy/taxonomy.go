package taxonomy

import (
	_ "embed"
	"fmt"

	"github.com/trialcat/trialcat/internal/schema"
)

//go:embed prompt.tmpl
var promptText string

//go:embed schema.json
var schemaJSON []byte

// Source names the embedded files in messages.
const Source = "embedded default (clinical trial categorization)"

// Prompt returns the default prompt template (see package prompt).
func Prompt() string { return promptText }

// Schema returns the default answer schema as JSON. The caller may keep and modify the copy.
func Schema() []byte { return append([]byte(nil), schemaJSON...) }

// MustSchema parses the default schema. It panics only if the embedded file is broken, which a
// test rules out.
func MustSchema() *schema.Schema {
	s, err := schema.Parse(schemaJSON, Source)
	if err != nil {
		panic(fmt.Sprintf("taxonomy: embedded schema.json does not parse: %v", err))
	}
	return s
}
