// Package price holds the embedded price table (USD per million tokens, per model) and turns
// token usage into cost. A model missing from the table has an unknown cost, never zero.
package price
