package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/trialcat/trialcat/internal/exitcode"
	"github.com/trialcat/trialcat/internal/quality"
)

func compareCommand(e env) command {
	return command{
		Command: cli.Command{
			Name:      "compare",
			Usage:     "measure how far two sets of labels agree (two runs, a run and a person's labels, or a run and the registry): agreement and Cohen's kappa per field",
			UsageText: "coordinator compare A B [--json] [--out DIR]\n   coordinator compare A --against-registry --input FILE [--json] [--out DIR]",
			Description: "A and B are run folders or CSV files whose first column is the ID (final_results.csv, a person's labels,\n" +
				"a review sheet from coordinator sample). Per category field: the records labelled on both sides, the share\n" +
				"equal, Cohen's kappa with a bootstrap 95% interval, and the confusion table; IDs on one side only are\n" +
				"counted. --out writes compare.html and disagreements.csv (both answers and both rationales).\n\n" +
				examples(
					"coordinator compare run-mini run-full --out cmp",
					"coordinator compare run1 run1/review_sample.csv",
					"coordinator compare run1 --against-registry --input testdata/trials.jsonl --json"),
			Flags: []cli.Flag{
				&cli.BoolFlag{Name: "against-registry", Usage: "compare A's intervention_type, trial_purpose and population with what the registry records state"},
				&cli.StringFlag{Name: "input", Usage: "with --against-registry: the records `FILE` (the run's input)"},
				&cli.BoolFlag{Name: "json", Usage: "print one JSON object instead of tables"},
				&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Usage: "write compare.html and disagreements.csv into `DIR`"},
				&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "seed of the bootstrap resamples"},
				&cli.Float64Flag{Name: "target", Value: 0.95, Usage: "with A's confidences (--votes), the accuracy the reliability table's threshold must reach"},
			},
		},
		args: -1,
		action: func(c *cli.Context) error {
			args := c.Args().Slice()
			if len(args) == 0 || len(args) > 2 {
				return fmt.Errorf("compare takes A and B (or A with --against-registry), got %d arguments (see coordinator compare --help): %w", len(args), exitcode.ErrUsage)
			}
			o := quality.CompareOptions{A: args[0], AgainstRegistry: c.Bool("against-registry"), Input: c.String("input"),
				JSON: c.Bool("json"), Out: c.String("out"), Seed: c.Uint64("seed"), Target: c.Float64("target")}
			if len(args) == 2 {
				o.B = args[1]
			}
			return quality.Compare(c.Context, o, quality.Deps{Stdout: e.stdout})
		},
	}
}
