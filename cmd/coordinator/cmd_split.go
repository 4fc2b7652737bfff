package main

import (
	"github.com/urfave/cli/v2"

	"github.com/trialcat/trialcat/internal/engine"
)

func splitCommand(e env) command {
	g := settings(inputGroup(), batchGroup(), modelGroup(), requestGroup())
	return command{
		Command: cli.Command{
			Name:      "split",
			Usage:     "check the input as a run does and write the batch files and run.json, starting nothing (for GNU parallel, Slurm, Kubernetes)",
			UsageText: "coordinator split --input FILE --out DIR [--batches M|auto] [the run's flags]",
			Description: "Another engine then runs one worker per batch (worker --run-dir DIR --index N, or worker --batch\n" +
				"DIR/batch_N.json), and `coordinator merge --out DIR` joins their results.\n\n" +
				examples(
					"coordinator split --input testdata/trials.jsonl --out run1 --workers 4",
					"parallel -j 4 worker --batch {} ::: run1/batch_*.json && coordinator merge --out run1"),
			Flags: withConfig(g.flags()),
		},
		action: func(c *cli.Context) error {
			return engine.Split(c.Context, g.options(c), e.deps())
		},
	}
}
