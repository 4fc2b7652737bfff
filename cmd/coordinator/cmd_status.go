package main

import (
	"github.com/urfave/cli/v2"

	"github.com/trialcat/trialcat/internal/engine"
)

// runDirFlag is --out of a command that works on an existing run folder.
func runDirFlag() cli.Flag {
	return &cli.StringFlag{Name: "out", Aliases: []string{"o"}, Value: engine.DefaultOut, Usage: "the run folder `DIR`"}
}

func statusCommand(e env) command {
	return command{
		Command: cli.Command{
			Name:      "status",
			Usage:     "show the progress of a running or finished run from its files, without disturbing it",
			UsageText: "coordinator status [--out DIR]",
			Description: "Reads run.json, the workers' results and failures, and the Slurm or Batch API state when there is one;\n" +
				"takes no lock and writes nothing, so it is safe beside a running coordinator or a scheduler's tasks.\n\n" +
				examples(
					"coordinator status --out demo-output",
					"watch -n 10 coordinator status --out /shared/run1"),
			Flags: []cli.Flag{runDirFlag()},
		},
		action: func(c *cli.Context) error {
			return engine.Status(c.Context, engine.StatusOptions{Out: c.String("out")}, e.deps())
		},
	}
}
