// Command worker categorizes the records of one batch file. The coordinator starts one per
// batch; run it by hand to debug a batch: worker --batch output/batch_3.json
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"github.com/rs/zerolog"

	"github.com/urfave/cli/v2"

	"github.com/trialcat/trialcat/cmd/internal/clikit"
	"github.com/trialcat/trialcat/internal/exitcode"
	"github.com/trialcat/trialcat/internal/signals"
	"github.com/trialcat/trialcat/internal/worker"
)

func main() {
	// Sub-second times in worker_N_log.txt, so timelines of short requests are exact.
	zerolog.TimeFieldFormat = time.RFC3339Nano
	// A worker's live heap is small (a batch's bookkeeping, the requests in flight) and most of
	// what it allocates dies within a request: collecting at 4 times the live heap rather than
	// twice halves the collector's CPU for a few megabytes. GOGC, when set, decides.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	ctx, _, stop := signals.Context(context.Background())
	err := run(ctx, os.Args)
	stop()
	os.Exit(exitcode.WorkerCode(err))
}

func run(ctx context.Context, args []string) error {
	ran := false
	app := &cli.App{
		Name:  "worker",
		Usage: "categorize the records of one batch file (normally started by the coordinator)",
		UsageText: "worker --batch OUT/batch_N.json [--model M] [--base-url URL] [--concurrency C]\n" +
			"   worker --run-dir OUT [--index N]   (N from SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX when not given)",
		Description: "Reads OUT/run.json beside the batch, appends each answer to OUT/worker_N_results.csv as soon as it has it,\n" +
			"records failures in OUT/worker_N_failures.csv and logs JSON lines to OUT/worker_N_log.txt. Started again it\n" +
			"skips the records already answered or failed. The API key is read from OPENAI_API_KEY only.\n\n" +
			"Exit codes: 0 every record answered; 1 some records failed; 2 usage error (or another worker holds the\n" +
			"batch); 3 the API refused the run (bad key, no quota); 4 the worker cannot write its files (a full disk);\n" +
			"130 interrupted.",
		HideHelpCommand: true,
		Version:         clikit.Version(),
		OnUsageError:    clikit.OnError("worker"),
		ExitErrHandler:  func(*cli.Context, error) {}, // never os.Exit inside Run
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "batch", Usage: "the batch file `OUT/batch_N.json`"},
			&cli.StringFlag{Name: "run-dir", Usage: "the run folder `OUT`; the batch is --index N, else $SLURM_ARRAY_TASK_ID, else $JOB_COMPLETION_INDEX"},
			&cli.IntFlag{Name: "index", Value: -1, Usage: "the batch `N` of --run-dir", DefaultText: "from the scheduler"},
			&cli.StringFlag{Name: "run", Usage: "the run file (default: run.json beside the batch)"},
			&cli.StringFlag{Name: "model", Usage: "override the run's model"},
			&cli.StringFlag{Name: "base-url", Usage: "override the run's OpenAI-compatible base URL"},
			&cli.IntFlag{Name: "concurrency", Usage: "override the requests in flight (default: the run's)"},
			&cli.IntFlag{Name: "rate-share", Usage: "this worker is one of `K` running at once (a scheduler's tasks): keep to 1/K of the run's --rpm and --tpm unless the run's limit server (limits.json) answers"},
			&cli.StringFlag{Name: "export", Usage: "write the batch's requests not done yet to `FILE` in the Batch API's input format (for vllm run-batch) and exit; no API call"},
			&cli.StringFlag{Name: "import", Usage: "read answers from `FILE` in the Batch API's output format (the Batch API, vllm run-batch) into the batch's results; no API call"},
			&cli.BoolFlag{Name: "events", Usage: "write progress events to stdout and stop when stdin closes (used by the coordinator)", Hidden: true},
			&cli.DurationFlag{Name: "heartbeat", Usage: "interval of heartbeat lines with --events (used by the coordinator)", Hidden: true},
			&cli.BoolFlag{Name: "serve", Usage: "with --events: stay up and work on the batches the coordinator assigns over stdin, one after another (used by the coordinator)", Hidden: true},
		}, clikit.ProfileFlags(false)...),
		Action: func(c *cli.Context) error {
			ran = true
			if c.NArg() > 0 {
				return fmt.Errorf("unexpected arguments %q; the batch is given with --batch (see worker --help): %w", c.Args().Slice(), exitcode.ErrUsage)
			}
			return clikit.Profiled(c, "worker", func() error { return runWorker(c) })
		},
	}
	err := app.RunContext(ctx, args)
	if !ran && err != nil && !errors.Is(err, exitcode.ErrUsage) {
		// urfave/cli rejected the flags before the action ran.
		err = fmt.Errorf("%w: %w", err, exitcode.ErrUsage)
	}
	if err != nil && exitcode.WorkerCode(err) != exitcode.Interrupted {
		fmt.Fprintln(os.Stderr, "worker:", err)
	}
	return err
}

func runWorker(c *cli.Context) error {
	return worker.Run(c.Context, worker.Options{
		BatchPath:   c.String("batch"),
		RunDir:      c.String("run-dir"),
		Index:       c.Int("index"),
		IndexGiven:  c.IsSet("index"),
		RunPath:     c.String("run"),
		Model:       c.String("model"),
		BaseURL:     c.String("base-url"),
		Concurrency: c.Int("concurrency"),
		Events:      c.Bool("events"),
		Heartbeat:   c.Duration("heartbeat"),
		RateShare:   c.Int("rate-share"),
		Export:      c.String("export"),
		Import:      c.String("import"),
		Serve:       c.Bool("serve"),
	}, worker.Deps{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv})
}
