package main

import (
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/trialcat/trialcat/internal/engine"
)

func tuneCommand(e env) command {
	g := settings(group{inputGroup()[0], inputGroup()[2]}, batchGroup(), modelGroup(), requestGroup(), localGroup())
	list := func(s string) []string {
		var out []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		return out
	}
	return command{
		Command: cli.Command{
			Name:      "tune",
			Usage:     "find the cheapest model and reasoning effort that agree with the strongest, on a sample",
			UsageText: "coordinator tune --input FILE [--sample 100] [--efforts minimal,low,medium,high] [--models M1,M2] [--sheet SHEET] [--tolerance 0.05]",
			Description: "Runs a sample of the input at every model and effort (each in a run folder of its own under --out, so a\n" +
				"second tune asks nothing new), compares each with the strongest (the last model at the last effort),\n" +
				"and with a reviewer's sheet when given, prices the whole input at each, and recommends the cheapest\n" +
				"setting whose agreement with the strongest is within --tolerance on every category field. The table is\n" +
				"also written to OUT/tune.json.\n\n" +
				examples(
					"coordinator tune --input trials.jsonl --sample 100 --efforts minimal,low,medium,high",
					"coordinator tune --input trials.jsonl --models gpt-5-nano,gpt-5-mini --efforts low,medium --sheet reviewed.csv"),
			Flags: append(g.flags(),
				&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Value: "tune", Usage: "the `DIR` of the sample, its runs and tune.json"},
				&cli.IntFlag{Name: "sample", Value: 100, Usage: "records of the input each setting answers"},
				&cli.StringFlag{Name: "efforts", Usage: "comma-separated reasoning `EFFORTS` to try, weakest first", DefaultText: "the model's default only"},
				&cli.StringFlag{Name: "models", Usage: "comma-separated `MODELS` to try, weakest first", DefaultText: "--model"},
				&cli.StringFlag{Name: "sheet", Usage: "a reviewer's labels of sampled records (a filled review sheet, or any CSV of ID and review_<field>)"},
				&cli.Float64Flag{Name: "tolerance", Value: 0.05, Usage: "how far below full agreement with the strongest a setting may be on its worst field"},
				&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "seed of the sample"}),
		},
		action: func(c *cli.Context) error {
			_, err := engine.Tune(c.Context, engine.TuneOptions{Options: g.options(c), Sample: c.Int("sample"),
				Models: list(c.String("models")), Efforts: list(c.String("efforts")), Sheet: c.String("sheet"),
				Tolerance: c.Float64("tolerance"), Dir: c.String("out"), Seed: c.Uint64("seed")}, e.deps())
			return err
		},
	}
}
