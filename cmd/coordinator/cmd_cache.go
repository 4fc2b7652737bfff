package main

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/trialcat/trialcat/internal/cache"
	"github.com/trialcat/trialcat/internal/exitcode"
)

func cacheCommand(e env) command {
	return command{
		Command: cli.Command{
			Name:      "cache",
			Usage:     "report on (stats) or prune (prune --older-than D) a response cache",
			UsageText: "coordinator cache stats --cache DIR\n   coordinator cache prune --cache DIR --older-than 720h",
			Description: "The cache holds one file per answer, keyed by the request and the server; a run with --cache asks only\n" +
				"what it does not hold.\n\n" +
				examples(
					"coordinator cache stats --cache auto",
					"coordinator cache prune --cache ~/.cache/trialcat --older-than 720h   # answers older than 30 days"),
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "cache", EnvVars: []string{"TRIALCAT_CACHE"}, Usage: "the cache `DIR` (or auto)"},
				&cli.DurationFlag{Name: "older-than", Usage: "prune: remove answers written more than this long ago"},
			},
		},
		args: -1,
		action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return fmt.Errorf("coordinator cache takes stats or prune (see coordinator cache --help): %w", exitcode.ErrUsage)
			}
			return runCache(e, c.String("cache"), c.Args().First(), c.Duration("older-than"), time.Now())
		},
	}
}

// runCache reports on (stats) or prunes (prune) the cache at dir.
func runCache(e env, dir, action string, olderThan time.Duration, now time.Time) error {
	if dir == "" {
		return fmt.Errorf("coordinator cache needs --cache DIR (or auto, or TRIALCAT_CACHE): %w", exitcode.ErrUsage)
	}
	if action != "stats" && action != "prune" {
		return fmt.Errorf("coordinator cache %q: want stats or prune: %w", action, exitcode.ErrUsage)
	}
	if action == "prune" && olderThan <= 0 {
		return fmt.Errorf("coordinator cache prune needs --older-than D (such as 720h for 30 days): %w", exitcode.ErrUsage)
	}
	dir, err := cache.Resolve(dir)
	if err != nil {
		return fmt.Errorf("%w: %w", err, exitcode.ErrUsage)
	}
	c, err := cache.Open(dir)
	if err != nil {
		return err
	}
	if action == "prune" {
		n, err := c.Prune(now.Add(-olderThan))
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%s: removed %d answers written more than %s ago\n", dir, n, olderThan)
		return nil
	}
	st, err := c.Stats()
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s: %d answers, %.1f MB", dir, st.Entries, float64(st.Bytes)/(1<<20))
	if st.Entries > 0 {
		fmt.Fprintf(e.stdout, ", written %s to %s", st.Oldest.UTC().Format(time.DateOnly), st.Newest.UTC().Format(time.DateOnly))
	}
	if st.Temps > 0 {
		fmt.Fprintf(e.stdout, "; %d unfinished writes (prune removes them)", st.Temps)
	}
	fmt.Fprintln(e.stdout)
	return nil
}
