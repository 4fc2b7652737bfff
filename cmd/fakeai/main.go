// Command fakeai serves an OpenAI-compatible fake Chat Completions API for tests, benchmarks
// and scripts. It prints "listening on http://ADDR/v1", serves until SIGINT or SIGTERM, then
// prints its request statistics as JSON on stdout. The bearer key it requires is read from
// FAKEAI_API_KEY (default "test-key"), never from a flag.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/trialcat/trialcat/internal/exitcode"
	"github.com/trialcat/trialcat/internal/fakeai"
	"github.com/urfave/cli/v2"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newApp(os.Stdout, os.Getenv).RunContext(ctx, os.Args)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fakeai:", err)
	}
	os.Exit(exitcode.Code(err))
}

// options are the parsed flags.
type options struct {
	Addr   string
	Config fakeai.Config
}

// newApp builds the CLI. getenv supplies FAKEAI_API_KEY.
func newApp(stdout io.Writer, getenv func(string) string) *cli.App {
	rate := func(name, usage string) cli.Flag {
		return &cli.Float64Flag{Name: name, Usage: usage + " (fraction of requests, 0..1)"}
	}
	return &cli.App{
		Name:            "fakeai",
		Usage:           "serve a fake OpenAI-compatible Chat Completions API (key from $FAKEAI_API_KEY, default test-key)",
		HideHelpCommand: true,
		Writer:          stdout,
		ExitErrHandler:  func(*cli.Context, error) {}, // return errors; main exits once
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return fmt.Errorf("%w: %v; run fakeai --help", exitcode.ErrUsage, err)
		},
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "addr", Value: "127.0.0.1:0", Usage: "address to listen on"},
			&cli.Int64Flag{Name: "seed", Value: 1, Usage: "seed of the fault generator"},
			rate("rate-429", "answer 429 rate_limit_exceeded"),
			rate("rate-500", "answer 500"),
			rate("rate-503", "answer 503"),
			rate("rate-drop", "close the connection without an answer"),
			rate("rate-stall", "stall --stall-for, then answer"),
			rate("rate-bad-json", "answer content that is not JSON"),
			rate("rate-schema-break", "answer JSON that breaks the schema"),
			rate("rate-refusal", "answer a refusal"),
			rate("rate-length", "answer a truncated content with finish_reason length"),
			rate("agent-broken-args", "agent turns: a tool call whose arguments are not JSON"),
			rate("agent-unknown-tool", "agent turns: a call of a tool nobody offered"),
			rate("agent-text", "agent turns: text instead of a tool call"),
			rate("agent-schema-break", "agent turns: a submit that breaks the schema"),
			&cli.Float64Flag{Name: "agent-never-submit", Usage: "agent records (by ID) whose model never submits (fraction of records, 0..1)"},
			&cli.StringFlag{Name: "agent-tool-first", Usage: "agent: call this offered tool first, with the record's first intervention as {\"name\": ...}"},
			&cli.Float64Flag{Name: "noise", Usage: "probability that each category field of an answer is another of its values (a model whose answers vary)"},
			&cli.StringSliceFlag{Name: "model-noise", Usage: "`MODEL=P`: the noise of one model (repeatable)"},
			&cli.BoolFlag{Name: "prompt-cache", Value: true, Usage: "report cached prompt tokens as OpenAI does (prefixes of 1,024 tokens and more answered before, in 128-token steps); --prompt-cache=false reports none"},
			&cli.Float64Flag{Name: "flex-unavailable", Usage: "service_tier flex requests refused with 429 Resource Unavailable (fraction of flex requests, 0..1)"},
			&cli.DurationFlag{Name: "stall-for", Value: 30 * time.Second, Usage: "stall of a --rate-stall request"},
			&cli.DurationFlag{Name: "retry-after", Usage: "retry-after sent on random 429s (0: none)"},
			&cli.StringSliceFlag{Name: "fail-id", Usage: "`ID=STATUS`: always answer HTTP STATUS for record ID (repeatable)"},
			&cli.BoolFlag{Name: "insufficient-quota", Usage: "answer every request 429 insufficient_quota"},
			&cli.BoolFlag{Name: "unauthorized", Usage: "answer every request 401"},
			&cli.IntFlag{Name: "rpm", Usage: "requests per minute limit (0: none)"},
			&cli.IntFlag{Name: "tpm", Usage: "prompt tokens per minute limit (0: none)"},
			&cli.DurationFlag{Name: "latency-base", Usage: "base latency of an answer"},
			&cli.DurationFlag{Name: "latency-per-token", Usage: "extra latency per prompt token"},
			&cli.Float64Flag{Name: "latency-sigma", Usage: "lognormal sigma of the latency jitter (0: none)"},
			&cli.DurationFlag{Name: "batch-validating", Usage: "Batch API: how long a batch validates"},
			&cli.DurationFlag{Name: "batch-in-progress", Value: time.Second, Usage: "Batch API: how long a batch runs (the 24h window, scaled down)"},
			&cli.DurationFlag{Name: "batch-finalizing", Usage: "Batch API: how long a batch finalizes (and a cancel takes)"},
			&cli.Float64Flag{Name: "batch-expire-share", Usage: "Batch API: expire every batch with only this share (0..1) of its requests done"},
			&cli.BoolFlag{Name: "batch-fail-validation", Usage: "Batch API: fail every batch in validation"},
			&cli.BoolFlag{Name: "batch-no-output", Usage: "Batch API: complete batches without an output file"},
			&cli.BoolFlag{Name: "batch-malformed-line", Usage: "Batch API: put a line that is not JSON in every output file"},
			&cli.BoolFlag{Name: "batch-unknown-id", Usage: "Batch API: add an answer for a custom_id that was not asked"},
		},
		Action: func(c *cli.Context) error {
			opts, err := parseOptions(c, getenv)
			if err != nil {
				return err
			}
			return runServe(c.Context, opts, stdout)
		},
	}
}

func parseOptions(c *cli.Context, getenv func(string) string) (options, error) {
	if c.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected argument %q: fakeai takes only flags; run fakeai --help: %w", c.Args().First(), exitcode.ErrUsage)
	}
	key := getenv("FAKEAI_API_KEY")
	if key == "" {
		key = "test-key"
	}
	cfg := fakeai.Config{
		APIKey:            key,
		Seed:              c.Int64("seed"),
		StallFor:          c.Duration("stall-for"),
		RetryAfter:        c.Duration("retry-after"),
		InsufficientQuota: c.Bool("insufficient-quota"),
		Unauthorized:      c.Bool("unauthorized"),
		RPM:               c.Int("rpm"),
		PromptCache:       c.Bool("prompt-cache"),
		TPM:               c.Int("tpm"),
		Latency: fakeai.LatencyModel{
			Base:           c.Duration("latency-base"),
			PerPromptToken: c.Duration("latency-per-token"),
			Sigma:          c.Float64("latency-sigma"),
		},
		Batch: fakeai.BatchConfig{
			Validating: c.Duration("batch-validating"), InProgress: c.Duration("batch-in-progress"), Finalizing: c.Duration("batch-finalizing"),
			ExpireAfterShare: c.Float64("batch-expire-share"), FailValidation: c.Bool("batch-fail-validation"),
			NoOutputFile: c.Bool("batch-no-output"), MalformedLine: c.Bool("batch-malformed-line"), UnknownCustomID: c.Bool("batch-unknown-id"),
		},
	}
	rates := []struct {
		flag string
		dst  *float64
	}{
		{"rate-429", &cfg.Rate429}, {"rate-500", &cfg.Rate500}, {"rate-503", &cfg.Rate503},
		{"rate-drop", &cfg.RateDrop}, {"rate-stall", &cfg.RateStall}, {"rate-bad-json", &cfg.RateBadJSON},
		{"rate-schema-break", &cfg.RateSchemaBreak}, {"rate-refusal", &cfg.RateRefusal}, {"rate-length", &cfg.RateLength},
	}
	cfg.Agent.ToolFirst = c.String("agent-tool-first")
	cfg.Noise = c.Float64("noise")
	for _, mn := range c.StringSlice("model-noise") {
		m, p, ok := strings.Cut(mn, "=")
		v, err := strconv.ParseFloat(p, 64)
		if !ok || err != nil || v < 0 || v > 1 {
			return options{}, fmt.Errorf("--model-noise %q: want MODEL=P with P between 0 and 1: %w", mn, exitcode.ErrUsage)
		}
		if cfg.ModelNoise == nil {
			cfg.ModelNoise = map[string]float64{}
		}
		cfg.ModelNoise[m] = v
	}
	if cfg.Noise < 0 || cfg.Noise > 1 {
		return options{}, fmt.Errorf("--noise %v: must be between 0 and 1: %w", cfg.Noise, exitcode.ErrUsage)
	}
	for _, r := range []struct {
		flag string
		dst  *float64
	}{
		{"agent-broken-args", &cfg.Agent.RateBrokenArgs}, {"agent-unknown-tool", &cfg.Agent.RateUnknownTool},
		{"agent-text", &cfg.Agent.RateText}, {"agent-schema-break", &cfg.Agent.RateSchemaBreak}, {"agent-never-submit", &cfg.Agent.RateNeverSubmit},
		{"flex-unavailable", &cfg.FlexUnavailable},
	} {
		if v := c.Float64(r.flag); v < 0 || v > 1 {
			return options{}, fmt.Errorf("--%s %v: must be between 0 and 1: %w", r.flag, v, exitcode.ErrUsage)
		} else {
			*r.dst = v
		}
	}
	sum := 0.0
	for _, r := range rates {
		v := c.Float64(r.flag)
		if v < 0 || v > 1 {
			return options{}, fmt.Errorf("--%s %v: must be between 0 and 1: %w", r.flag, v, exitcode.ErrUsage)
		}
		*r.dst = v
		sum += v
	}
	if sum > 1 {
		return options{}, fmt.Errorf("fault rates sum to %v: they are shares of the traffic and must sum to at most 1: %w", sum, exitcode.ErrUsage)
	}
	if v := c.Float64("batch-expire-share"); v < 0 || v > 1 {
		return options{}, fmt.Errorf("--batch-expire-share %v: must be between 0 and 1: %w", v, exitcode.ErrUsage)
	}
	for _, f := range []string{"stall-for", "retry-after", "latency-base", "latency-per-token", "batch-validating", "batch-in-progress", "batch-finalizing"} {
		if c.Duration(f) < 0 {
			return options{}, fmt.Errorf("--%s %s: must not be negative: %w", f, c.Duration(f), exitcode.ErrUsage)
		}
	}
	if c.Int("rpm") < 0 || c.Int("tpm") < 0 || c.Float64("latency-sigma") < 0 {
		return options{}, fmt.Errorf("--rpm, --tpm and --latency-sigma must not be negative: %w", exitcode.ErrUsage)
	}
	for _, s := range c.StringSlice("fail-id") {
		id, st, ok := strings.Cut(s, "=")
		code, err := strconv.Atoi(st)
		if !ok || strings.TrimSpace(id) == "" || err != nil || code < 400 || code > 599 {
			return options{}, fmt.Errorf("--fail-id %q: want ID=STATUS with STATUS in 400..599, e.g. NCT01234567=400: %w", s, exitcode.ErrUsage)
		}
		if cfg.FailIDs == nil {
			cfg.FailIDs = map[string]int{}
		}
		cfg.FailIDs[strings.TrimSpace(id)] = code
	}
	return options{Addr: c.String("addr"), Config: cfg}, nil
}

// runServe serves until ctx ends, then prints the stats as JSON to stdout.
func runServe(ctx context.Context, opts options, stdout io.Writer) error {
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w; choose another --addr: %w", opts.Addr, err, exitcode.ErrUsage)
	}
	fake := fakeai.New(opts.Config)
	srv := &http.Server{Handler: fake, ReadHeaderTimeout: 10 * time.Second}
	if _, err := fmt.Fprintf(stdout, "listening on http://%s/v1\n", ln.Addr()); err != nil {
		_ = ln.Close()
		return fmt.Errorf("write stdout: %w", err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	select {
	case err = <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		_ = srv.Close() // stalled requests: cut them
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(fake.Stats()); err != nil {
		return fmt.Errorf("write stats: %w", err)
	}
	return nil
}
