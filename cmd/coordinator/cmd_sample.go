package main

import (
	"github.com/urfave/cli/v2"

	"github.com/trialcat/trialcat/internal/quality"
)

func sampleCommand(e env) command {
	return command{
		Command: cli.Command{
			Name:      "sample",
			Usage:     "write OUT/review_sample.csv: N answered records with their answers and empty review_ columns for a reviewer",
			UsageText: "coordinator sample [--out DIR] [-n 50] [--seed S] [--by FIELD] [--replace]",
			Description: "A person fills the review_ columns (an empty cell skips the field); coordinator compare then measures\n" +
				"the run against them.\n\n" +
				examples(
					"coordinator sample --out run1 -n 50 --by trial_purpose",
					"coordinator compare run1 run1/review_sample.csv"),
			Flags: []cli.Flag{runDirFlag(),
				&cli.IntFlag{Name: "n", Value: 50, Usage: "records in the sample (-n or --n)"},
				&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "seed of the draw"},
				&cli.StringFlag{Name: "by", Usage: "stratify by this category `FIELD` (each of its answers gets a proportional share, at least one)"},
				&cli.BoolFlag{Name: "by-confidence", Usage: "the least confident records first (a run with --votes): where a person's review helps most"},
				&cli.BoolFlag{Name: "replace", Aliases: []string{"force"}, Usage: "replace a sheet a reviewer has begun to fill in (it moves to DIR/previous-<time>/); without it such a sheet is never touched"},
			},
		},
		action: func(c *cli.Context) error {
			return quality.Sample(c.Context, quality.SampleOptions{Out: c.String("out"), N: c.Int("n"), Seed: c.Uint64("seed"), By: c.String("by"), ByConfidence: c.Bool("by-confidence"), Replace: c.Bool("replace")}, quality.Deps{Stdout: e.stdout})
		},
	}
}
