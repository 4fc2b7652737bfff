package engine

import (
	"github.com/trialcat/trialcat/internal/cache"
)

// cacheDir resolves --cache (see cache.Resolve); a value it cannot resolve is a usage error.
func cacheDir(v string) (string, error) {
	d, err := cache.Resolve(v)
	if err != nil {
		return "", usagef("%w", err)
	}
	return d, nil
}
