package main

import (
	"github.com/urfave/cli/v2"

	"github.com/trialcat/trialcat/internal/display"
	"github.com/trialcat/trialcat/internal/engine"
)

const runDescription = `Splits --input into batch files (OUT/batch_N.json), keeps --workers worker processes busy on
them (restarting one that crashes), and merges their OUT/worker_N_results.csv into
OUT/final_results.csv in input order; records that failed are listed in OUT/final_failures.csv.
OUT/summary.json and OUT/report.html say how the run went.

Provider: with OPENAI_API_KEY set, the OpenAI Chat Completions API (or any OpenAI-compatible
server, --base-url); without it, the offline categorizer, which fills the default clinical-trial
categories from each record's own registry fields. The key is read from the environment only.

Rerunning the same command resumes: answered records are not asked again, failed and missing
ones are retried.

Exit codes: 0 every record succeeded; 1 some records failed, or the API refused the run;
2 usage or input error (nothing written); 130 interrupted (rerun to resume).

` + "Examples:\n" +
	"  coordinator --workers 4 --input testdata/trials.jsonl --out demo   # offline, no key needed\n" +
	"  OPENAI_API_KEY=... coordinator --workers 20 --input trials.json --rpm 5000 --cache auto\n" +
	"  coordinator run --input trials.json --print-config > study.yaml; coordinator run --config study.yaml"

// runSettings are the flags of a run on this machine: all of them.
func runSettings() group {
	return settings(inputGroup(), batchGroup(), modelGroup(), requestGroup(), localGroup(), displayGroup())
}

// runCommand is the run, as the root command (name "") and as `coordinator run`.
func runCommand(e env, name string) command {
	g := runSettings()
	flags := append(withConfig(g.flags()), printConfigFlag())
	usage := "coordinator --workers 20 --input trials.json [--out output] [flags]"
	if name != "" {
		usage = "coordinator run --workers 20 --input trials.json [--out output] [flags]"
	}
	return command{
		Command: cli.Command{
			Name:        name,
			Usage:       "categorize --input into --out (what `coordinator` with no command does)",
			UsageText:   usage,
			Description: runDescription,
			Flags:       flags,
		},
		action: func(c *cli.Context) error {
			if c.Bool(printConfigFlagName) {
				return printConfig(e.stdout, c, g)
			}
			return runRun(c, e, g.options(c))
		},
	}
}

func runRun(c *cli.Context, e env, opts engine.Options) error {
	disp, err := display.New(display.Options{Mode: display.Mode(c.String("progress")), Out: e.stderr, Every: opts.ProgressEvery, Getenv: e.getenv})
	if err != nil {
		return err
	}
	defer disp.Close()
	deps := engine.Deps{Log: e.logger(c.String("log-level"), disp.LogWriter()), Stdout: e.stdout, Getenv: e.getenv, HardStop: e.hardStop, Display: disp}
	if opts.Stream == "-" {
		// Standard output carries the records; the summary goes with the logs.
		deps.Stdout, deps.StreamTo = e.stderr, e.stdout
	}
	_, err = engine.Run(c.Context, opts, deps)
	return err
}
