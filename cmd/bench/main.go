// Command bench measures trialcat at its limits: the real bin/coordinator (which starts real
// bin/worker processes) against the in-process fake OpenAI-compatible server (internal/fakeai)
// with heavy-tailed latency and RPM/TPM limits, and offline at up to a million records. It
// prints Markdown tables and writes the raw results as JSON to -results (bench-results/).
//
//	go run ./cmd/bench -scenario all          # what make bench runs (about 15 minutes)
//	go run ./cmd/bench -scenario latency      # workers 1..50, static split vs --batches auto
//	go run ./cmd/bench -scenario limits       # --rpm / --tpm binding: share of the limit, 429s
//	go run ./cmd/bench -scenario scale        # overhead, worker start, RSS, 1M records, merge
//	go run ./cmd/bench -scenario agent        # --agent against one-shot by criteria length; efficiency at 20 workers
//	go run ./cmd/bench -scenario registry     # fetch throughput; a sync over a 500,000-study mirror
//	go run ./cmd/bench -scenario cost         # prompt caching, flex refusals, the Batch API and the agent, counted
//	go run ./cmd/bench -scenario ceiling      # CPU per record and records/s against an instant server (-pprof DIR profiles it)
//	go run ./cmd/bench -quick                 # a smoke version of every scenario
//
// Build the binaries first (make build); BENCHMARKS.md holds the results and how to read them.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// config is the command line.
type config struct {
	Scenario string
	Quick    bool
	Bin      string
	Results  string
	Work     string
	Keep     bool
	Sample   string
	Workers  string // latency scenario: comma-separated worker counts of the fast series
	Series   string // latency scenario: fast, slow, slots, a list of them, or all
	Pprof    string // TRIALCAT_PPROF of every coordinator run: profiles under it, a folder per run
}

// bench holds what every scenario needs.
type bench struct {
	cfg   config
	bin   string // absolute
	work  string
	out   io.Writer
	start time.Time
}

func main() {
	var cfg config
	flag.StringVar(&cfg.Scenario, "scenario", "all", "latency, limits, scale, agent, registry, cost, ceiling or all")
	flag.BoolVar(&cfg.Quick, "quick", false, "a small smoke version of each scenario (under 30s in all)")
	flag.StringVar(&cfg.Bin, "bin", "bin", "folder of the built coordinator and worker")
	flag.StringVar(&cfg.Results, "results", "bench-results", "folder for the raw JSON results")
	flag.StringVar(&cfg.Work, "work", "", "scratch folder for inputs and runs (default: a new temp folder, removed at the end)")
	flag.BoolVar(&cfg.Keep, "keep", false, "keep the scratch folder")
	flag.StringVar(&cfg.Sample, "sample", "testdata/trials.jsonl", "the real trial records to replicate")
	flag.StringVar(&cfg.Workers, "workers", "", "latency scenario: worker counts (default 1,5,10,20,50; quick 1,5)")
	flag.StringVar(&cfg.Series, "series", "all", "latency scenario: fast (150ms base latency, workers 1-50), slow (600ms, 20 and 50 workers), slots (40 slots as workers × concurrency), hedge, short (409 records at 10 and 20 workers, hedged and not), a comma-separated list, or all")
	flag.StringVar(&cfg.Pprof, "pprof", "", "write every run's CPU and allocation profiles under `DIR` (TRIALCAT_PPROF), a folder per run")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, cfg, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config, out io.Writer) error {
	switch cfg.Scenario {
	case "latency", "limits", "scale", "agent", "registry", "cost", "ceiling", "all":
	default:
		return fmt.Errorf("-scenario %q: want latency, limits, scale, agent, registry, cost, ceiling or all", cfg.Scenario)
	}
	bin, err := filepath.Abs(cfg.Bin)
	if err != nil {
		return err
	}
	work := cfg.Work
	if work == "" {
		if work, err = os.MkdirTemp("", "trialcat-bench-"); err != nil {
			return err
		}
		if !cfg.Keep {
			defer os.RemoveAll(work)
		}
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.Results, 0o755); err != nil {
		return err
	}
	// Run a private copy of the binaries: bin/ is shared, and a `make build` elsewhere in the
	// middle of a 20-minute benchmark would otherwise change what is measured.
	m := machineInfo(ctx)
	if bin, m.Binaries, err = snapshot(bin, filepath.Join(work, "bin")); err != nil {
		return err
	}
	b := &bench{cfg: cfg, bin: bin, work: work, out: out, start: time.Now()}
	fmt.Fprintf(out, "# trialcat benchmarks%s\n\n%s\n", map[bool]string{true: " (quick)"}[cfg.Quick], m.markdown())

	scenarios := []struct {
		name string
		run  func(context.Context) (any, error)
	}{
		{"latency", b.latency},
		{"limits", b.limits},
		{"scale", b.scale},
		{"agent", b.agentBench},
		{"registry", b.registryBench},
		{"cost", b.costBench},
		{"ceiling", b.ceiling},
	}
	for _, s := range scenarios {
		if cfg.Scenario != "all" && cfg.Scenario != s.name {
			continue
		}
		t0 := time.Now()
		res, err := s.run(ctx)
		if res != nil {
			if werr := b.save(s.name, m, res, time.Since(t0)); werr != nil {
				return werr
			}
		}
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		fmt.Fprintf(out, "_%s scenario took %.0fs._\n\n", s.name, time.Since(t0).Seconds())
	}
	fmt.Fprintf(out, "_All done in %.0fs; raw results in %s/._\n", time.Since(b.start).Seconds(), cfg.Results)
	return nil
}

// save writes one scenario's raw results to -results/<scenario>[-quick]-<time>.json and
// -results/<scenario>[-quick].json (the latest).
func (b *bench) save(name string, m machine, res any, took time.Duration) error {
	if b.cfg.Quick {
		name += "-quick"
	}
	doc := map[string]any{"scenario": name, "machine": m, "took_s": took.Seconds(), "command": strings.Join(os.Args, " "), "results": res}
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	stamp := b.start.UTC().Format("20060102T150405Z")
	for _, p := range []string{
		filepath.Join(b.cfg.Results, name+"-"+stamp+".json"),
		filepath.Join(b.cfg.Results, name+".json"),
	} {
		if err := os.WriteFile(p, append(data, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// machine describes where the benchmarks ran.
type machine struct {
	NumCPU    int    `json:"nproc"`
	Free      string `json:"free_g"`
	Uname     string `json:"uname"`
	GoVersion string `json:"go_version"`
	Date      string `json:"date"`
	Commit    string `json:"commit"`
	// Binaries maps each binary measured to the start of its SHA-256.
	Binaries map[string]string `json:"binaries"`
}

// snapshot hard-links the coordinator and worker from dir into to (a rebuild replaces bin/'s
// files with new ones, so the links keep what was there), and returns to and the binaries'
// SHA-256 prefixes. A link, unlike a copy, also keeps the page cache of the file a user runs:
// a binary written in one large write is cached in large folios, and each process mapping it
// then counts some 15 MB more of shared, file-backed pages in its RSS.
func snapshot(dir, to string) (string, map[string]string, error) {
	if err := os.MkdirAll(to, 0o755); err != nil {
		return "", nil, err
	}
	sums := map[string]string{}
	for _, name := range []string{"coordinator", "worker"} {
		src, dst := filepath.Join(dir, name), filepath.Join(to, name)
		data, err := os.ReadFile(src)
		if err != nil {
			return "", nil, fmt.Errorf("%s is missing: run make build first: %w", name, err)
		}
		_ = os.Remove(dst)
		if err := os.Link(src, dst); err != nil {
			if err := copyChunked(dst, data); err != nil {
				return "", nil, err
			}
		}
		sum := sha256.Sum256(data)
		sums[name] = hex.EncodeToString(sum[:6])
	}
	return to, sums, nil
}

// copyChunked writes data to path in 128 KiB writes, as cp does.
func copyChunked(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755) //nolint:gosec // it copies a binary, which must stay executable
	if err != nil {
		return err
	}
	for len(data) > 0 {
		n := min(len(data), 128<<10)
		if _, err := f.Write(data[:n]); err != nil {
			f.Close()
			return err
		}
		data = data[n:]
	}
	return f.Close()
}

func machineInfo(ctx context.Context) machine {
	sh := func(name string, args ...string) string {
		out, err := exec.CommandContext(ctx, name, args...).Output() //nolint:gosec // fixed commands that describe the machine
		if err != nil {
			return "(" + name + ": " + err.Error() + ")"
		}
		return strings.TrimSpace(string(out))
	}
	return machine{
		NumCPU: runtime.NumCPU(), Free: sh("free", "-g"), Uname: sh("uname", "-a"),
		GoVersion: sh("go", "version"), Date: time.Now().UTC().Format(time.RFC3339),
		Commit: sh("git", "describe", "--always", "--dirty"),
	}
}

func (m machine) markdown() string {
	return fmt.Sprintf("Machine: `nproc` = %d; `uname -a`: `%s`; `%s`; date %s; commit %s; binaries coordinator %s, worker %s (SHA-256).\n\n```\n$ free -g\n%s\n```\n",
		m.NumCPU, m.Uname, m.GoVersion, m.Date, m.Commit, m.Binaries["coordinator"], m.Binaries["worker"], m.Free)
}

// table prints a Markdown table.
func table(w io.Writer, head []string, rows [][]string) {
	fmt.Fprintln(w, "| "+strings.Join(head, " | ")+" |")
	seps := make([]string, len(head))
	for i := range seps {
		seps[i] = "---:"
		if i == 0 {
			seps[i] = "---"
		}
	}
	fmt.Fprintln(w, "| "+strings.Join(seps, " | ")+" |")
	for _, r := range rows {
		fmt.Fprintln(w, "| "+strings.Join(r, " | ")+" |")
	}
	fmt.Fprintln(w)
}

func f1(v float64) string  { return fmt.Sprintf("%.1f", v) }
func f2(v float64) string  { return fmt.Sprintf("%.2f", v) }
func pct(v float64) string { return fmt.Sprintf("%.1f%%", 100*v) }
func itoa(v int) string    { return fmt.Sprintf("%d", v) }
func mb(kb int64) string   { return fmt.Sprintf("%.1f", float64(kb)/1024) }
