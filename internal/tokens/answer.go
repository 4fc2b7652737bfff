package tokens

import (
	"math"

	"github.com/trialcat/trialcat/internal/schema"
)

// Output token assumptions for answer values; see the package documentation.
const (
	// FreeStringTokens is the expected length of a string property without maxLength.
	FreeStringTokens = 60
	// CharsPerToken turns a string's maxLength into tokens (English text, o200k tokenizer).
	CharsPerToken = 4
	// ArrayItems is the expected number of elements of an array property.
	ArrayItems = 2

	integerTokens = 2
	numberTokens  = 3
	booleanTokens = 1
	quoteTokens   = 2 // the quotes around a free string
)

// AnswerTokens is the expected number of tokens of one answer to s, written as compact JSON in
// the order of the schema: see the package documentation for the assumptions.
func AnswerTokens(s *schema.Schema) int {
	n := float64(2 + len(s.Properties) - 1) // braces and commas
	for _, p := range s.Properties {
		n += float64(Count(`"` + p.Name + `":`))
		n += valueTokens(p)
	}
	return int(math.Ceil(n))
}

// valueTokens is the expected number of tokens of one value of p.
func valueTokens(p schema.Property) float64 {
	switch p.Type {
	case schema.TypeString:
		if len(p.Enum) > 0 {
			sum := 0
			for _, v := range p.Enum {
				sum += Count(`"` + v + `"`)
			}
			return float64(sum) / float64(len(p.Enum))
		}
		if p.MaxLength > 0 {
			return float64(p.MaxLength)/CharsPerToken + quoteTokens
		}
		return FreeStringTokens + quoteTokens
	case schema.TypeInteger:
		return integerTokens
	case schema.TypeNumber:
		return numberTokens
	case schema.TypeBoolean:
		return booleanTokens
	case schema.TypeArray:
		item := float64(FreeStringTokens + quoteTokens)
		if p.Items != nil {
			item = valueTokens(*p.Items)
		}
		return 2 + ArrayItems*item + (ArrayItems - 1) // brackets, items, commas
	default:
		return FreeStringTokens
	}
}
