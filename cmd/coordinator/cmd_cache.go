package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/trialcat/trialcat/internal/engine"
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
			return engine.CacheCommand(c.Context, engine.CacheOptions{Dir: c.String("cache"), Action: c.Args().First(), OlderThan: c.Duration("older-than")}, e.deps())
		},
	}
}
