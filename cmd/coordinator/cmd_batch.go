package main

import (
	"github.com/urfave/cli/v2"

	"github.com/trialcat/trialcat/internal/engine"
)

// The commands around batch files in the Batch API's format: export (write the requests), import
// (read the answers) and cancel (stop the run's batches at the OpenAI Batch API).

func exportCommand(e env) command {
	g := splitFirst(workerBinSetting())
	return command{
		Command: cli.Command{
			Name:      "export",
			Usage:     "write each batch's requests not done yet as a Batch API input file (OUT/export/batch_N.jsonl, what vllm run-batch reads); no API call",
			UsageText: "coordinator export --out DIR   (or with --input and the run's flags: split first; no key needed)",
			Description: "Each line is one request in the OpenAI Batch API's input format, its custom_id the record. Answer them\n" +
				"with any tool that reads the format, then read the answers back with coordinator import.\n\n" +
				examples(
					"coordinator export --input trials.json --out run1 --model my-local-model",
					"vllm run-batch -i run1/export/batch_0.jsonl -o run1/export/batch_0.out.jsonl --model my-local-model",
					"coordinator import --out run1 run1/export/*.out.jsonl"),
			Flags: withConfig(g.flags()),
		},
		action: func(c *cli.Context) error {
			return engine.Export(c.Context, engine.ExportOptions{Options: splitOptions(c, g)}, e.deps())
		},
	}
}

func importCommand(e env) command {
	return command{
		Command: cli.Command{
			Name:      "import",
			Usage:     "read answers in the Batch API's output format (the Batch API, vllm run-batch) into the run's results, and merge",
			UsageText: "coordinator import --out DIR [--worker-bin PATH] FILE...",
			Description: "Each line goes to the batch of its custom_id; an answer is checked against the run's schema as a live\n" +
				"one is. Importing the same file twice adds nothing.\n\n" +
				examples("coordinator import --out run1 run1/export/*.out.jsonl"),
			Flags: []cli.Flag{runDirFlag(), workerBinSetting().flag},
		},
		args: -1,
		action: func(c *cli.Context) error {
			return engine.Import(c.Context, engine.ImportOptions{Out: c.String("out"), Files: c.Args().Slice(), WorkerBin: c.String("worker-bin")}, e.deps())
		},
	}
}

func cancelCommand(e env) command {
	return command{
		Command: cli.Command{
			Name:      "cancel",
			Usage:     "cancel the run's batches at the OpenAI Batch API (--backend batch-api)",
			UsageText: "coordinator cancel [--out DIR]",
			Description: "Asks the Batch API to cancel every batch of the run still running; what was answered before the\n" +
				"cancel is collected by the next run of the same command.\n\n" +
				examples("coordinator cancel --out run1"),
			Flags: []cli.Flag{runDirFlag()},
		},
		action: func(c *cli.Context) error {
			return engine.Cancel(c.Context, engine.CancelOptions{Out: c.String("out")}, e.deps())
		},
	}
}
