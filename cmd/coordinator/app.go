package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/mattn/go-isatty"
	"github.com/urfave/cli/v2"

	"github.com/trialcat/trialcat/internal/coordinator"
	"github.com/trialcat/trialcat/internal/display"
	"github.com/trialcat/trialcat/internal/exitcode"
	"github.com/trialcat/trialcat/internal/usage"
)

const description = `Splits --input into N batch files (OUT/batch_N.json), starts one worker process per batch,
waits for all of them (restarting a worker that crashes) and merges their OUT/worker_N_results.csv
into OUT/final_results.csv, in input order. Records that failed are listed in OUT/final_failures.csv.

Input: a JSON array, JSON Lines, a ClinicalTrials.gov API v2 page {"studies":[...]}, or CSV with a
header; the format is read from the content.

Provider: with OPENAI_API_KEY set, the OpenAI Chat Completions API (or any OpenAI-compatible server
given by --base-url or OPENAI_BASE_URL); without it, the offline categorizer, which fills the default
clinical-trial categories from each record's own ClinicalTrials.gov fields. The key is read from the
environment only.

Rerunning the same command resumes: answered records are not asked again, failed and missing ones
are retried.

Exit codes: 0 every record succeeded; 1 some records failed, or the API refused the run;
2 usage or input error (nothing written); 130 interrupted (rerun to resume).`

func run(ctx context.Context, args []string, hardStop <-chan struct{}) error {
	ran := false
	// act marks that flag parsing succeeded, so errors after it are the action's own.
	act := func(f cli.ActionFunc) cli.ActionFunc {
		return func(c *cli.Context) error {
			ran = true
			if c.NArg() > 0 {
				hint := ""
				if c.Command == nil || c.Command.Name == "" || c.Command.Name == c.App.Name {
					if s := cli.SuggestCommand(c.App.Commands, c.Args().First()); s != "" {
						hint = "; " + strings.Replace(s, "Did you", "did you", 1)
					}
				}
				return fmt.Errorf("unexpected arguments %q%s (see coordinator --help): %w", c.Args().Slice(), hint, exitcode.ErrUsage)
			}
			return f(c)
		}
	}
	outFlag := &cli.StringFlag{Name: "out", Aliases: []string{"o"}, Value: coordinator.DefaultOut, Usage: "the run's output `DIR`"}
	app := &cli.App{
		Name:            "coordinator",
		Usage:           "categorize records with an LLM using isolated parallel worker processes",
		UsageText:       "coordinator --workers 20 --input trials.json [--out output] [flags]",
		Description:     description,
		HideHelpCommand: true,
		OnUsageError:    usage.OnError("coordinator"),
		ExitErrHandler:  func(*cli.Context, error) {}, // never os.Exit inside Run: children must be stopped first
		Flags:           runFlags(),
		Commands: []*cli.Command{
			{
				Name:         "estimate",
				OnUsageError: usage.OnError("coordinator estimate"),
				Usage:        "count prompt tokens and estimate cost and wall time for a run, making no API calls",
				UsageText:    "coordinator estimate --input trials.json [the run's flags] [--latency 4s]",
				Flags: append(runFlags(), &cli.DurationFlag{Name: "latency",
					Usage: "per-request latency to assume (default: a rough figure per model family; measure and set it)"}),
				Action: act(func(c *cli.Context) error {
					opts, err := optionsFrom(c)
					if err != nil {
						return err
					}
					return coordinator.Estimate(c.Context, coordinator.EstimateOptions{Options: opts, Latency: c.Duration("latency")}, plainDeps())
				}),
			},
			{
				Name:         "split",
				OnUsageError: usage.OnError("coordinator split"),
				Usage:        "check the input as a run does and write the batch files and run.json, starting nothing (for GNU parallel, Slurm, Kubernetes)",
				UsageText:    "coordinator split --input trials.json --out DIR [--batches M|auto] [the run's flags]",
				Flags:        runFlags(),
				Action: act(func(c *cli.Context) error {
					opts, err := optionsFrom(c)
					if err != nil {
						return err
					}
					return coordinator.Split(c.Context, opts, plainDeps())
				}),
			},
			{
				Name:         "slurm",
				OnUsageError: usage.OnError("coordinator slurm"),
				Usage:        "run a split run's unfinished batches as a Slurm job array (with --input: split first)",
				UsageText: "coordinator slurm --out DIR [--max-parallel K] [--partition P] [--time T] [--mem M] [--sbatch-arg ARG ...]\n" +
					"                  [--task-prelude FILE] [--wait [--limit-server]]   (or with --input and the run's flags)",
				Description: "Writes DIR/slurm/array.sbatch (one array task per batch, each running worker --run-dir DIR), submits it\n" +
					"with sbatch and records the job ID in DIR/slurm/jobs.json. Run again, it submits only the batches with\n" +
					"records not done or failed, never one whose task is queued or running. The API key reaches the tasks\n" +
					"through sbatch's export of this environment (--export=ALL, its default); it is never written to a file.\n\n" +
					"--wait follows the job, logs progress, merges when it ends and exits as a run does: 0 every record\n" +
					"done, 1 some failed or not done (run the same command again to resubmit them), 2 usage, 130 stopped\n" +
					"waiting (the job goes on: scancel JOB, or come back with --wait).",
				Flags: append(runFlags(),
					&cli.IntFlag{Name: "max-parallel", Usage: "array tasks running at once (the array's %`K`); also the number of equal shares of --rpm/--tpm"},
					&cli.StringFlag{Name: "partition", Usage: "Slurm `PARTITION`"},
					&cli.StringFlag{Name: "time", Usage: "time limit per task (Slurm's `TIME` format, e.g. 2:00:00)"},
					&cli.StringFlag{Name: "mem", Usage: "memory per task (e.g. 1G)"},
					&cli.StringSliceFlag{Name: "sbatch-arg", Usage: "another sbatch option for the script, one per flag (e.g. --sbatch-arg=--account=lab)"},
					&cli.StringFlag{Name: "task-prelude", Usage: "shell `FILE` each task sources before the worker (start a local model server, add to WORKER_ARGS)"},
					&cli.BoolFlag{Name: "wait", Usage: "follow the job to its end, then merge"},
					&cli.BoolFlag{Name: "limit-server", Usage: "while waiting, serve the run's one rate limit to every task over TCP (see coordinator limits)"},
					&cli.StringFlag{Name: "limit-listen", Value: coordinator.DefaultLimitListen, Usage: "listen `ADDR` of the limit server (tasks dial this host's name and the port)"},
				),
				Action: act(func(c *cli.Context) error {
					opts, err := engineOptions(c)
					if err != nil {
						return err
					}
					return coordinator.Slurm(c.Context, coordinator.SlurmOptions{
						Options: opts, MaxParallel: c.Int("max-parallel"), Partition: c.String("partition"), Time: c.String("time"),
						Mem: c.String("mem"), SbatchArgs: c.StringSlice("sbatch-arg"), TaskPrelude: c.String("task-prelude"),
						Wait: c.Bool("wait"), LimitServer: c.Bool("limit-server"), LimitListen: c.String("limit-listen"),
					}, plainDeps())
				}),
			},
			{
				Name:         "k8s",
				OnUsageError: usage.OnError("coordinator k8s"),
				Usage:        "write a split run as a Kubernetes Indexed Job (DIR/k8s/job.yaml) to apply with kubectl (with --input: split first)",
				UsageText:    "coordinator k8s --out DIR --image IMG --pvc CLAIM [--parallelism K] [--namespace NS] [--secret NAME]",
				Description: "One completion index per batch; each pod runs worker --run-dir DIR, which reads JOB_COMPLETION_INDEX. The\n" +
					"run folder is the PersistentVolumeClaim, mounted in every pod at DIR's absolute path; the API key comes from\n" +
					"the Secret by secretKeyRef. Exit 3 (the API refused the run), 2 and 1 fail an index for good; crashes and\n" +
					"evictions are retried (backoffLimitPerIndex). Build the image with the Dockerfile.",
				Flags: append(runFlags(),
					&cli.StringFlag{Name: "image", Usage: "container `IMAGE` holding the worker (see the Dockerfile)"},
					&cli.StringFlag{Name: "pvc", Usage: "the PersistentVolumeClaim `NAME` holding the run folder"},
					&cli.IntFlag{Name: "parallelism", Usage: "pods running at once (default: 4, or fewer batches); also the number of equal shares of --rpm/--tpm"},
					&cli.StringFlag{Name: "namespace", Usage: "the Job's `NAMESPACE` (default: kubectl's)"},
					&cli.StringFlag{Name: "secret", Value: "trialcat-openai", Usage: "the Secret `NAME` with the key OPENAI_API_KEY"},
					&cli.StringFlag{Name: "mount-path", Usage: "where the pods mount the run folder (default: its absolute path here)"},
				),
				Action: act(func(c *cli.Context) error {
					opts, err := engineOptions(c)
					if err != nil {
						return err
					}
					return coordinator.K8s(c.Context, coordinator.K8sOptions{
						Options: opts, Image: c.String("image"), PVC: c.String("pvc"), Parallelism: c.Int("parallelism"),
						Namespace: c.String("namespace"), Secret: c.String("secret"), MountPath: c.String("mount-path"),
					}, plainDeps())
				}),
			},
			{
				Name:         "cancel",
				OnUsageError: usage.OnError("coordinator cancel"),
				Usage:        "cancel the run's batches at the OpenAI Batch API (--backend batch-api)",
				Flags:        []cli.Flag{outFlag},
				Action: act(func(c *cli.Context) error {
					return coordinator.Cancel(c.Context, coordinator.CancelOptions{Out: c.String("out")}, plainDeps())
				}),
			},
			{
				Name:         "export",
				OnUsageError: usage.OnError("coordinator export"),
				Usage:        "write each batch's requests not done yet as a Batch API input file (OUT/export/batch_N.jsonl, what vllm run-batch reads); no API call",
				UsageText:    "coordinator export --out DIR   (or with --input and the run's flags: split first; no key needed)",
				Flags:        runFlags(),
				Action: act(func(c *cli.Context) error {
					opts, err := engineOptions(c)
					if err != nil {
						return err
					}
					return coordinator.Export(c.Context, coordinator.ExportOptions{Options: opts}, plainDeps())
				}),
			},
			{
				Name:         "import",
				OnUsageError: usage.OnError("coordinator import"),
				Usage:        "read answers in the Batch API's output format (the Batch API, vllm run-batch) into the run's results, and merge",
				UsageText:    "coordinator import --out DIR FILE...",
				Flags:        []cli.Flag{outFlag},
				Action: func(c *cli.Context) error {
					ran = true
					return coordinator.Import(c.Context, coordinator.ImportOptions{Out: c.String("out"), Files: c.Args().Slice()}, plainDeps())
				},
			},
			{
				Name:         "compare",
				OnUsageError: usage.OnError("coordinator compare"),
				Usage:        "measure how far two sets of labels agree (two runs, a run and a person's labels, or a run and the registry): agreement and Cohen's kappa per field",
				UsageText:    "coordinator compare A B [--json] [--out DIR]\n   coordinator compare A --against-registry --input FILE [--json] [--out DIR]",
				Description: "A and B are run folders or CSV files whose first column is the ID (final_results.csv, a person's labels,\n" +
					"a review sheet from coordinator sample). Per category field: the records labelled on both sides, the share\n" +
					"equal, Cohen's kappa with a bootstrap 95% interval, and the confusion table; IDs on one side only are\n" +
					"counted. --out writes compare.html and disagreements.csv (both answers and both rationales).",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "against-registry", Usage: "compare A's intervention_type, trial_purpose and population with what the registry records state"},
					&cli.StringFlag{Name: "input", Usage: "with --against-registry: the records `FILE` (the run's input)"},
					&cli.BoolFlag{Name: "json", Usage: "print one JSON object instead of tables"},
					&cli.StringFlag{Name: "out", Usage: "write compare.html and disagreements.csv into `DIR`"},
					&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "seed of the bootstrap resamples"},
				},
				Action: func(c *cli.Context) error {
					ran = true
					args := c.Args().Slice()
					if len(args) == 0 || len(args) > 2 {
						return fmt.Errorf("compare takes A and B (or A with --against-registry), got %d arguments: %w", len(args), exitcode.ErrUsage)
					}
					o := coordinator.CompareOptions{A: args[0], AgainstRegistry: c.Bool("against-registry"), Input: c.String("input"),
						JSON: c.Bool("json"), Out: c.String("out"), Seed: c.Uint64("seed")}
					if len(args) == 2 {
						o.B = args[1]
					}
					return coordinator.Compare(c.Context, o, plainDeps())
				},
			},
			{
				Name:         "sample",
				OnUsageError: usage.OnError("coordinator sample"),
				Usage:        "write OUT/review_sample.csv: N answered records with their answers and empty review_ columns for a reviewer",
				UsageText:    "coordinator sample --out DIR --n 50 [--seed S] [--by FIELD]",
				Flags: []cli.Flag{outFlag,
					&cli.IntFlag{Name: "n", Value: 50, Usage: "records in the sample"},
					&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "seed of the draw"},
					&cli.StringFlag{Name: "by", Usage: "stratify by this category `FIELD` (each of its answers gets a proportional share, at least one)"},
				},
				Action: act(func(c *cli.Context) error {
					return coordinator.Sample(c.Context, coordinator.SampleOptions{Out: c.String("out"), N: c.Int("n"), Seed: c.Uint64("seed"), By: c.String("by")}, plainDeps())
				}),
			},
			{
				Name:         "cache",
				OnUsageError: usage.OnError("coordinator cache"),
				Usage:        "report on (stats) or prune (prune --older-than D) a response cache",
				UsageText:    "coordinator cache stats --cache DIR\n   coordinator cache prune --cache DIR --older-than 720h",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "cache", EnvVars: []string{"TRIALCAT_CACHE"}, Usage: "the cache `DIR` (or auto)"},
					&cli.DurationFlag{Name: "older-than", Usage: "prune: remove answers written more than this long ago"},
				},
				Action: func(c *cli.Context) error {
					ran = true
					if c.NArg() != 1 {
						return fmt.Errorf("coordinator cache takes stats or prune: %w", exitcode.ErrUsage)
					}
					return coordinator.CacheCommand(c.Context, coordinator.CacheOptions{Dir: c.String("cache"), Action: c.Args().First(), OlderThan: c.Duration("older-than")}, plainDeps())
				},
			},
			{
				Name:         "limits",
				OnUsageError: usage.OnError("coordinator limits"),
				Usage:        "serve a split run's one rate limit (--rpm/--tpm) over TCP to workers a scheduler runs, until Ctrl-C",
				UsageText:    "coordinator limits --out DIR [--listen ADDR]",
				Description: "Writes DIR/limits.json (the address and a random token, mode 0600). Workers run with --run-dir DIR read it,\n" +
					"authenticate with the token and take their permits here, so the whole limit is used however many run at once.\n" +
					"A worker that cannot reach it keeps to its equal share (--rate-share) and says so.",
				Flags: []cli.Flag{outFlag, &cli.StringFlag{Name: "listen", Value: coordinator.DefaultLimitListen, Usage: "listen `ADDR`"}},
				Action: act(func(c *cli.Context) error {
					return coordinator.Limits(c.Context, coordinator.LimitsOptions{Out: c.String("out"), Listen: c.String("listen")}, plainDeps())
				}),
			},
			{
				Name:         "status",
				OnUsageError: usage.OnError("coordinator status"),
				Usage:        "show the progress of a running or finished run from its files, without disturbing it",
				Flags:        []cli.Flag{outFlag},
				Action: act(func(c *cli.Context) error {
					return coordinator.Status(c.Context, coordinator.StatusOptions{Out: c.String("out")}, plainDeps())
				}),
			},
			{
				Name:         "merge",
				OnUsageError: usage.OnError("coordinator merge"),
				Usage:        "merge the workers' results of a run again, without running anything",
				Flags:        []cli.Flag{outFlag},
				Action: act(func(c *cli.Context) error {
					return coordinator.Merge(c.Context, coordinator.MergeOptions{Out: c.String("out")}, plainDeps())
				}),
			},
		},
		Action: act(func(c *cli.Context) error {
			opts, err := optionsFrom(c)
			if err != nil {
				return err
			}
			disp, err := display.New(display.Options{Mode: display.Mode(c.String("progress")), Out: os.Stderr, Every: c.Duration("progress-every")})
			if err != nil {
				return err
			}
			defer disp.Close()
			log := newLogger(c.String("log-level"), disp.LogWriter())
			deps := coordinator.Deps{Log: log, Stdout: os.Stdout, Getenv: os.Getenv, HardStop: hardStop, Display: disp}
			if opts.Stream == "-" {
				// Standard output carries the records; the summary goes with the logs.
				deps.Stdout, deps.StreamTo = os.Stderr, os.Stdout
			}
			_, err = coordinator.Run(c.Context, opts, deps)
			return err
		}),
	}
	args = hoistFlags(args, "compare", map[string]bool{"--input": true, "--out": true, "--seed": true})
	args = hoistFlags(args, "import", map[string]bool{"--out": true, "-o": true})
	args = hoistFlags(args, "cache", map[string]bool{"--cache": true, "--older-than": true})
	err := app.RunContext(ctx, args)
	if !ran && err != nil && !errors.Is(err, exitcode.ErrUsage) {
		err = fmt.Errorf("%w: %w", err, exitcode.ErrUsage)
	}
	if err != nil && !errors.Is(err, exitcode.ErrInterrupted) {
		fmt.Fprintln(os.Stderr, "coordinator:", err)
	}
	return err
}

// hoistFlags moves the flags of command cmd that come after its arguments in front of them, so
// that `coordinator compare A B --json` reads as written (the flag parser stops at the first
// argument). valued are the flags that take a value as the next word.
func hoistFlags(args []string, cmd string, valued map[string]bool) []string {
	if len(args) < 2 || args[1] != cmd {
		return args
	}
	var flags, rest []string
	for i := 2; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			rest = append(rest, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "-") && a != "-":
			flags = append(flags, a)
			if valued[a] && i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
		default:
			rest = append(rest, a)
		}
	}
	return append(append(append([]string{}, args[:2]...), flags...), rest...)
}

// plainDeps are the connections of the commands that only read and print.
func plainDeps() coordinator.Deps {
	return coordinator.Deps{Log: newLogger("info", os.Stderr), Stdout: os.Stdout, Getenv: os.Getenv}
}

func newLogger(level string, out io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:   "coordinator",
		Level:  hclog.LevelFromString(level),
		Output: out,
		Color:  hclog.AutoColor,
		// A terminal gets short times; files and CI logs get full timestamps.
		TimeFormat: timeFormat(),
	})
}

func timeFormat() string {
	if isatty.IsTerminal(os.Stderr.Fd()) {
		return "15:04:05.000"
	}
	return time.RFC3339
}

func runFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "input", Aliases: []string{"i"}, Usage: "the `FILE` of records to categorize"},
		&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Value: coordinator.DefaultOut, Usage: "output `DIR`"},
		&cli.IntFlag{Name: "workers", Aliases: []string{"w"}, Value: 20, Usage: "worker processes running at once"},
		&cli.StringFlag{Name: "batches", Usage: "`N` batches (at least --workers; a new worker starts on the next batch as one finishes), or auto (guided self-scheduling); default one batch per worker"},
		&cli.IntFlag{Name: "concurrency", Value: 1, Usage: "requests in flight per worker"},
		&cli.Float64Flag{Name: "hedge", Usage: "`P`: once no batch is left, idle workers' slots re-send requests running past the run's p90 latency (first answer wins, the other is cancelled), at most P% of the records; off by default"},
		&cli.StringFlag{Name: "backend", Value: "live", Usage: "live (request by request) or batch-api (the OpenAI Batch API: half the price, answers within 24 hours)"},
		&cli.IntFlag{Name: "batch-max-requests", Usage: "with --backend batch-api, at most `N` requests per input file (default and most: 50,000); lower it to stay under a model's enqueued-token limit"},
		&cli.Int64Flag{Name: "batch-max-bytes", Usage: "with --backend batch-api, at most this many bytes per input file (default and most: 200 MB)", Hidden: true},
		&cli.DurationFlag{Name: "batch-poll", Usage: "with --backend batch-api, the first interval of the status polls (backing off to 12 times it; default 5s)", Hidden: true},
		&cli.StringFlag{Name: "id-field", Usage: "dotted `PATH` of the record ID (default: nct_id, nctId, NCTId or protocolSection.identificationModule.nctId)"},
		&cli.BoolFlag{Name: "dedupe", Usage: "keep the first of records with the same ID instead of refusing the input"},
		&cli.StringFlag{Name: "provider", Value: "auto", Usage: "auto (openai when OPENAI_API_KEY is set, else offline), openai or offline"},
		&cli.StringFlag{Name: "model", Value: coordinator.DefaultModel, Usage: "model `NAME`"},
		&cli.StringFlag{Name: "base-url", Usage: "OpenAI-compatible API base `URL` (default: OPENAI_BASE_URL, else OpenAI)"},
		&cli.StringFlag{Name: "reasoning-effort", Usage: "reasoning effort for reasoning models (minimal, low, medium, high)"},
		&cli.Float64Flag{Name: "temperature", Usage: "sampling temperature; sent only when given, and never to reasoning models"},
		&cli.Int64Flag{Name: "max-completion-tokens", Usage: "cap on output tokens per request (0: the model's default)"},
		&cli.StringFlag{Name: "prompt", Usage: "prompt template `FILE` (Go text/template; default: the embedded clinical-trial prompt)"},
		&cli.StringFlag{Name: "schema", Usage: "JSON Schema `FILE` of the answer; each top-level property becomes a column"},
		&cli.StringFlag{Name: "priority-ids", Usage: "`FILE` of record IDs (one a line) answered by --priority-model"},
		&cli.StringFlag{Name: "priority-model", Usage: "model `NAME` for the records in --priority-ids"},
		&cli.StringFlag{Name: "escalate-model", Usage: "model `NAME` that retries a record whose answers failed validation twice"},
		&cli.Float64Flag{Name: "max-cost", Usage: "budget in `USD` for the whole run: when spend reaches it no new requests start, the run merges and exits 1"},
		&cli.StringFlag{Name: "prices", Usage: "JSON `FILE` of model prices (USD per 1M tokens) adding to or replacing the embedded table"},
		&cli.IntFlag{Name: "max-attempts", Value: coordinator.DefaultMaxAttempts, Usage: "attempts per record, across worker restarts"},
		&cli.DurationFlag{Name: "timeout", Value: coordinator.DefaultTimeout, Usage: "timeout per attempt"},
		&cli.IntFlag{Name: "rpm", Usage: "requests per minute for the whole run (0: unlimited)"},
		&cli.IntFlag{Name: "tpm", Usage: "tokens per minute for the whole run (0: unlimited)"},
		&cli.IntFlag{Name: "max-input-tokens", Usage: "a record whose prompt is longer fails as too_long without a request (0: the model's input window when known)"},
		&cli.IntFlag{Name: "max-restarts", Value: coordinator.DefaultMaxRestarts, Usage: "restarts of a crashed worker per batch"},
		&cli.BoolFlag{Name: "fresh", Usage: "start over: move the previous run's files in --out to OUT/previous-<time>/"},
		&cli.StringFlag{Name: "worker-bin", Usage: "worker binary `PATH` (default: beside the coordinator, then on PATH)"},
		&cli.DurationFlag{Name: "grace", Value: coordinator.DefaultGrace, Usage: "how long a stopping worker may take before it is killed"},
		&cli.DurationFlag{Name: "stall-after", Value: coordinator.DefaultStallAfter, Usage: "kill and restart a worker not heard from for this long (stopped, deadlocked, a hung file system)"},
		&cli.StringFlag{Name: "cache", EnvVars: []string{"TRIALCAT_CACHE"}, Usage: "response cache `DIR` (or auto: the user's cache folder): records asked before with the same prompt, model and settings are answered from it at no cost"},
		&cli.StringFlag{Name: "stream", Usage: "- : write each answered record as a JSON line to stdout as it lands (the summary goes to stderr); OUT/results.jsonl always gets them"},
		&cli.StringFlag{Name: "progress", Value: "auto", Usage: "auto (bars on a terminal, else plain lines), tty, plain or off"},
		&cli.DurationFlag{Name: "progress-every", Value: 10 * time.Second, Usage: "interval of the plain progress line"},
		&cli.StringFlag{Name: "log-level", Value: "info", Usage: "trace, debug, info, warn or error"},
	}
}

// engineOptions are the run's flags of a command that works on a split run and splits first
// only when --input is given.
func engineOptions(c *cli.Context) (coordinator.Options, error) {
	o, err := optionsFrom(c)
	if !c.IsSet("input") {
		o.Input = ""
	}
	return o, err
}

func optionsFrom(c *cli.Context) (coordinator.Options, error) {
	o := coordinator.Options{
		Input: c.String("input"), Out: c.String("out"), Workers: c.Int("workers"), Batches: c.String("batches"),
		Concurrency: c.Int("concurrency"), Hedge: c.Float64("hedge"), IDField: c.String("id-field"), Dedupe: c.Bool("dedupe"),
		Provider: c.String("provider"), Model: c.String("model"), BaseURL: c.String("base-url"),
		ReasoningEffort: c.String("reasoning-effort"), MaxCompletionTokens: c.Int64("max-completion-tokens"),
		PromptFile: c.String("prompt"), SchemaFile: c.String("schema"), MaxAttempts: c.Int("max-attempts"),
		Timeout: c.Duration("timeout"), RPM: c.Int("rpm"), TPM: c.Int("tpm"), MaxRestarts: c.Int("max-restarts"), MaxInputTokens: c.Int("max-input-tokens"),
		Fresh: c.Bool("fresh"), WorkerBin: c.String("worker-bin"), Grace: c.Duration("grace"), StallAfter: c.Duration("stall-after"),
		ProgressEvery:   c.Duration("progress-every"),
		PriorityIDsFile: c.String("priority-ids"), PriorityModel: c.String("priority-model"),
		EscalateModel: c.String("escalate-model"), MaxCostUSD: c.Float64("max-cost"), PricesFile: c.String("prices"),
		Backend: c.String("backend"), BatchPoll: c.Duration("batch-poll"), BatchMaxRequests: c.Int("batch-max-requests"),
		BatchMaxBytes: c.Int64("batch-max-bytes"), Stream: c.String("stream"), Cache: c.String("cache"),
	}
	if c.IsSet("temperature") {
		t := c.Float64("temperature")
		o.Temperature = &t
	}
	return o, nil
}
