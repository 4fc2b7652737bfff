package engine

import (
	"errors"
	"os"

	"github.com/trialcat/trialcat/internal/cache"
)

// cacheDir resolves --cache (see cache.Resolve) and makes sure the workers can use it: a value it
// cannot resolve, a path that is not a folder, or a folder that cannot be written is a usage
// error that names the cache.
func cacheDir(v string) (string, error) {
	d, err := cache.Resolve(v)
	if err != nil {
		return "", usagef("%w", err)
	}
	st, err := os.Stat(d)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return d, nil // the first worker creates it
	case err != nil:
		return "", usagef("--cache %s: %w", v, err)
	case !st.IsDir():
		return "", usagef("--cache %s is a file, not a folder: give a folder for the answers (it is created if missing), or auto", d)
	}
	if err := probeWritable(d, "--cache "+d+" is not writable", "--cache"); err != nil {
		return "", err
	}
	return d, nil
}
