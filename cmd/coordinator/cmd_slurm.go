package main

import (
	"github.com/urfave/cli/v2"

	"github.com/trialcat/trialcat/internal/engine"
)

// splitFirst are the settings of a command that works on a split run and, given --input, splits
// it first.
func splitFirst(extra ...setting) group {
	return settings(inputGroup(), batchGroup(), modelGroup(), requestGroup(), extra)
}

// splitOptions are a splitFirst command's options: without --input, the run folder's own.
func splitOptions(c *cli.Context, g group) engine.Options {
	o := g.options(c)
	if !c.IsSet("input") {
		o.Input = ""
	}
	return o
}

const catSlurm = "Slurm"

func slurmCommand(e env) command {
	g := splitFirst(progressEverySetting())
	return command{
		Command: cli.Command{
			Name:  "slurm",
			Usage: "run a split run's unfinished batches as a Slurm job array (with --input: split first)",
			UsageText: "coordinator slurm --out DIR [--max-parallel K] [--partition P] [--time T] [--mem M] [--sbatch-arg ARG ...]\n" +
				"                  [--task-prelude FILE] [--wait [--limit-server]]   (or with --input and the run's flags)",
			Description: "Writes DIR/slurm/array.sbatch (one array task per batch, each running worker --run-dir DIR), submits it\n" +
				"with sbatch and records the job ID in DIR/slurm/jobs.json. Run again, it submits only the batches with\n" +
				"records not done or failed, never one whose task is queued or running. The API key reaches the tasks\n" +
				"through sbatch's export of this environment (--export=ALL, its default); it is never written to a file.\n\n" +
				"--wait follows the job, logs progress, merges when it ends and exits as a run does: 0 every record\n" +
				"done, 1 some failed or not done (run the same command again to resubmit them), 2 usage, 130 stopped\n" +
				"waiting (the job goes on: scancel JOB, or come back with --wait).\n\n" +
				examples(
					"coordinator slurm --input trials.json --out /shared/run1 --workers 50 --max-parallel 20 --time 2:00:00",
					"coordinator slurm --out /shared/run1 --wait --limit-server   # follow it, one rate limit for all tasks",
					"coordinator status --out /shared/run1"),
			Flags: append(withConfig(g.flags()),
				&cli.IntFlag{Name: "max-parallel", Category: catSlurm, DefaultText: "no cap", Usage: "array tasks running at once (the array's %`K`); also the number of equal shares of --rpm/--tpm"},
				&cli.StringFlag{Name: "partition", Category: catSlurm, Usage: "Slurm `PARTITION`", DefaultText: "the cluster's default"},
				&cli.StringFlag{Name: "time", Category: catSlurm, Usage: "time limit per task (Slurm's `TIME` format, e.g. 2:00:00)", DefaultText: "the partition's"},
				&cli.StringFlag{Name: "mem", Category: catSlurm, Usage: "memory per task (e.g. 1G)", DefaultText: "the partition's"},
				&cli.StringSliceFlag{Name: "sbatch-arg", Category: catSlurm, Usage: "another sbatch option for the script, one per flag (e.g. --sbatch-arg=--account=lab)"},
				&cli.StringFlag{Name: "task-prelude", Category: catSlurm, Usage: "shell `FILE` each task sources before the worker (start a local model server, add to WORKER_ARGS)"},
				&cli.BoolFlag{Name: "wait", Category: catSlurm, Usage: "follow the job to its end, then merge"},
				&cli.BoolFlag{Name: "limit-server", Category: catSlurm, Usage: "while waiting, serve the run's one rate limit to every task over TCP (see coordinator limits)"},
				&cli.StringFlag{Name: "limit-listen", Category: catSlurm, Value: engine.DefaultLimitListen, Usage: "listen `ADDR` of the limit server: this machine only by default; :PORT for tasks on other nodes (they dial this host's name)"},
			),
		},
		action: func(c *cli.Context) error {
			return engine.Slurm(c.Context, engine.SlurmOptions{
				Options: splitOptions(c, g), MaxParallel: c.Int("max-parallel"), Partition: c.String("partition"), Time: c.String("time"),
				Mem: c.String("mem"), SbatchArgs: c.StringSlice("sbatch-arg"), TaskPrelude: c.String("task-prelude"),
				Wait: c.Bool("wait"), LimitServer: c.Bool("limit-server"), LimitListen: c.String("limit-listen"),
			}, e.deps())
		},
	}
}
