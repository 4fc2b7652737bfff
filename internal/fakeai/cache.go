package fakeai

import (
	"hash/fnv"
)

// The provider's prompt cache, as OpenAI documents it: a request's prompt is cached in prefixes of
// CacheMinTokens tokens and more, in CacheStepTokens steps, once a request with that prefix has
// been answered; a later request with the same model and prefix reports the longest such prefix
// as usage.prompt_tokens_details.cached_tokens. The fake counts a token as bytesPerToken bytes of
// the prompt text, tools and response schema first (the provider puts them before the messages).
const (
	CacheMinTokens  = 1024
	CacheStepTokens = 128
	bytesPerToken   = 4
	// maxCachedPrefixes bounds the fake's memory: past it the cache starts empty again, as a
	// provider's evicts.
	maxCachedPrefixes = 1 << 20
)

// promptCache holds a hash of each prefix answered, keyed by model.
type promptCache struct {
	seen map[uint64]struct{}
}

// prefixHashes returns the hash of each cacheable prefix of text, shortest first: the prefixes of
// CacheMinTokens, CacheMinTokens+CacheStepTokens, ... tokens that text holds.
func prefixHashes(model, text string) []uint64 {
	tokens := len(text) / bytesPerToken
	if tokens < CacheMinTokens {
		return nil
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(model))
	_, _ = h.Write([]byte{0})
	out := make([]uint64, 0, 1+(tokens-CacheMinTokens)/CacheStepTokens)
	done := 0
	for n := CacheMinTokens; n <= tokens; n += CacheStepTokens {
		_, _ = h.Write([]byte(text[done : n*bytesPerToken]))
		done = n * bytesPerToken
		out = append(out, h.Sum64())
	}
	return out
}

// hit returns the tokens of the longest prefix among hashes seen before (0 for none). The caller
// holds the server's lock.
func (c *promptCache) hit(hashes []uint64) int {
	for i := len(hashes) - 1; i >= 0; i-- {
		if _, ok := c.seen[hashes[i]]; ok {
			return CacheMinTokens + i*CacheStepTokens
		}
	}
	return 0
}

// add caches every prefix of an answered request. The caller holds the server's lock.
func (c *promptCache) add(hashes []uint64) {
	if c.seen == nil || len(c.seen)+len(hashes) > maxCachedPrefixes {
		c.seen = make(map[uint64]struct{}, len(hashes))
	}
	for _, h := range hashes {
		c.seen[h] = struct{}{}
	}
}
