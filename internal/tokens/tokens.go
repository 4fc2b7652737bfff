package tokens

import (
	"sync"
	"sync/atomic"

	"github.com/tiktoken-go/tokenizer"

	"github.com/trialcat/trialcat/internal/modelinfo"
)

// Encodings.
const (
	// O200kBase is the encoding of gpt-4o, gpt-4.1, gpt-5 and the o-series.
	O200kBase = modelinfo.EncodingO200k
	// Cl100kBase is the encoding of gpt-4, gpt-3.5-turbo and the fallback for unknown models.
	Cl100kBase = modelinfo.EncodingCl100k
)

// Chat framing, as OpenAI's cookbook counts it: every message costs a few tokens besides its
// content (its role and delimiters), and the reply is primed with a few more.
const (
	// PerMessage is the framing of one message; a little above the cookbook's 3, to stay on the
	// safe side when the role or a name takes a token more.
	PerMessage = 4
	// ReplyPriming is the framing of the assistant reply every request ends with.
	ReplyPriming = 3
)

// The encoders are package-level on purpose, the one exception to "no globals" here: each is an
// immutable table embedded in the binary (the tokenizer library itself keeps its vocabularies in
// package-level sync.Once values, so a per-struct copy would save nothing), it is safe for
// concurrent use, and building it costs tens of milliseconds, so it happens at most once per
// process and only in processes that count tokens.
var (
	o200k  = sync.OnceValue(func() tokenizer.Codec { return mustGet(tokenizer.O200kBase) })
	cl100k = sync.OnceValue(func() tokenizer.Codec { return mustGet(tokenizer.Cl100kBase) })
)

func mustGet(enc tokenizer.Encoding) tokenizer.Codec {
	c, err := tokenizer.Get(enc)
	if err != nil {
		// Both encodings are compiled into the library; failing here is a build problem.
		panic("tokens: encoding " + string(enc) + " is missing from the tokenizer library: " + err.Error())
	}
	return c
}

// Counter counts tokens with one model's encoding. The zero value is not usable; a *Counter is
// safe for concurrent use.
//
// Estimate remembers the count of the last system message it saw: a run sends the same system
// message with every record, and counting it again would be most of the work.
type Counter struct {
	name   string
	codec  func() tokenizer.Codec
	system atomic.Pointer[counted]
}

type counted struct {
	text string
	n    int
}

// Default counts with o200k_base, as Count and Estimate do.
func Default() *Counter { return &Counter{name: O200kBase, codec: o200k} }

// ForModel returns a counter with model's encoding (see Encoding).
func ForModel(model string) *Counter {
	if Encoding(model) == O200kBase {
		return Default()
	}
	return &Counter{name: Cl100kBase, codec: cl100k}
}

// Encoding names the encoding of model (modelinfo.Encoding decides it).
func Encoding(model string) string { return modelinfo.Encoding(model) }

// Name returns the encoding's name.
func (c *Counter) Name() string { return c.name }

// Count returns the number of tokens of text. Text the tokenizer cannot split (it never happens
// with these encodings, but the library can report an error) is counted as one token per 3 bytes,
// an overestimate for any language.
func (c *Counter) Count(text string) int {
	if text == "" {
		return 0
	}
	n, err := c.codec().Count(text)
	if err != nil {
		return (len(text) + 2) / 3
	}
	return n
}

// Estimate returns the tokens a chat request with these messages is expected to use: the tokens
// of the system message (left out when empty) and of the user message, their framing, and
// maxOutput, the output expected (or allowed) for the answer. Add the tokens of a response
// schema separately: Structured Outputs put it in the prompt too.
func (c *Counter) Estimate(system, user string, maxOutput int) int {
	n := ReplyPriming + PerMessage + c.Count(user)
	if system != "" {
		n += PerMessage + c.countSystem(system)
	}
	return n + max(maxOutput, 0)
}

func (c *Counter) countSystem(text string) int {
	if last := c.system.Load(); last != nil && last.text == text {
		return last.n
	}
	n := c.Count(text)
	c.system.Store(&counted{text: text, n: n})
	return n
}

// Count returns the number of tokens of text with o200k_base.
func Count(text string) int { return Default().Count(text) }

// Estimate is Counter.Estimate with o200k_base.
func Estimate(system, user string, maxOutput int) int {
	return Default().Estimate(system, user, maxOutput)
}
