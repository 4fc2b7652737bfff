package engine

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/trialcat/trialcat/internal/cache"
)

// cacheDir resolves --cache: "auto" is the user's cache folder; any other value a folder,
// made absolute so workers (and tasks on other nodes) find the same one.
func cacheDir(v string) (string, error) {
	if v == "auto" {
		d, err := cache.DefaultDir()
		if err != nil {
			return "", usagef("%w", err)
		}
		return d, nil
	}
	d, err := filepath.Abs(v)
	if err != nil {
		return "", usagef("--cache %s: %w", v, err)
	}
	return d, nil
}

// CacheOptions are the flags of `coordinator cache`.
type CacheOptions struct {
	Dir string
	// Action is stats or prune; OlderThan is prune's age.
	Action    string
	OlderThan time.Duration
}

// CacheCommand reports on or prunes a response cache.
func CacheCommand(ctx context.Context, opts CacheOptions, deps Deps) error {
	deps.defaults()
	if opts.Dir == "" {
		return usagef("coordinator cache needs --cache DIR (or auto, or TRIALCAT_CACHE)")
	}
	dir, err := cacheDir(opts.Dir)
	if err != nil {
		return err
	}
	c, err := cache.Open(dir)
	if err != nil {
		return err
	}
	switch opts.Action {
	case "stats":
		st, err := c.Stats()
		if err != nil {
			return err
		}
		fmt.Fprintf(deps.Stdout, "%s: %d answers, %.1f MB", dir, st.Entries, float64(st.Bytes)/(1<<20))
		if st.Entries > 0 {
			fmt.Fprintf(deps.Stdout, ", written %s to %s", st.Oldest.UTC().Format(time.DateOnly), st.Newest.UTC().Format(time.DateOnly))
		}
		if st.Temps > 0 {
			fmt.Fprintf(deps.Stdout, "; %d unfinished writes (prune removes them)", st.Temps)
		}
		fmt.Fprintln(deps.Stdout)
	case "prune":
		if opts.OlderThan <= 0 {
			return usagef("coordinator cache prune needs --older-than D (such as 720h for 30 days)")
		}
		n, err := c.Prune(deps.Now().Add(-opts.OlderThan))
		if err != nil {
			return err
		}
		fmt.Fprintf(deps.Stdout, "%s: removed %d answers written more than %s ago\n", dir, n, opts.OlderThan)
	default:
		return usagef("coordinator cache %q: want stats or prune", opts.Action)
	}
	return nil
}
