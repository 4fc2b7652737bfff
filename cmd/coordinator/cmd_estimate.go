package main

import (
	"github.com/urfave/cli/v2"

	"github.com/trialcat/trialcat/internal/engine"
)

func estimateCommand(e env) command {
	g := settings(inputGroup(), batchGroup(), modelGroup(), requestGroup())
	return command{
		Command: cli.Command{
			Name:      "estimate",
			Usage:     "count prompt tokens and estimate cost and wall time for a run, making no API calls",
			UsageText: "coordinator estimate --input FILE [the run's flags] [--latency 4s]",
			Description: "Renders every record's prompt as the run would and counts it with the model's tokenizer; prints\n" +
				"tokens, cost per model (from the embedded price table, or --prices), and the wall time at --workers x\n" +
				"--concurrency under --rpm/--tpm. With --cache, the records the cache would answer are counted as free.\n\n" +
				examples(
					"coordinator estimate --input testdata/trials.jsonl --model gpt-5-mini",
					"coordinator estimate --input trials.json --workers 20 --concurrency 4 --rpm 5000 --latency 3s",
					"coordinator estimate --config study.yaml"),
			Flags: append(withConfig(g.flags()), latencyFlag),
		},
		action: func(c *cli.Context) error {
			return engine.Estimate(c.Context, engine.EstimateOptions{Options: g.options(c), Latency: c.Duration("latency")}, e.deps())
		},
	}
}
