package main

import (
	"github.com/urfave/cli/v2"

	"github.com/trialcat/trialcat/internal/engine"
)

func mergeCommand(e env) command {
	return command{
		Command: cli.Command{
			Name:      "merge",
			Usage:     "merge the workers' results of a run again, without running anything",
			UsageText: "coordinator merge [--out DIR]",
			Description: "Joins every worker_N_results.csv and worker_N_failures.csv into final_results.csv and\n" +
				"final_failures.csv in input order, as the end of a run does. Use it after another engine ran the\n" +
				"batches (GNU parallel, a Slurm array, Kubernetes) or after running a batch by hand.\n\n" +
				examples(
					"coordinator merge --out run1",
					"worker --batch run1/batch_3.json && coordinator merge --out run1"),
			Flags: []cli.Flag{runDirFlag()},
		},
		action: func(c *cli.Context) error {
			return engine.Merge(c.Context, engine.MergeOptions{Out: c.String("out")}, e.deps())
		},
	}
}
