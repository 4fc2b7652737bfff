package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/trialcat/trialcat/internal/compare"
	"github.com/trialcat/trialcat/internal/input"
	"github.com/trialcat/trialcat/internal/rundir"
	"github.com/trialcat/trialcat/internal/safefile"
)

// TuneOptions are `coordinator tune`'s: the run's settings (Input, the model settings, the
// requests) and what to try.
type TuneOptions struct {
	Options
	// Sample is how many records of Input each setting answers.
	Sample int
	// Models and Efforts are tried in every combination; the last of each is the strongest,
	// the reference the others are compared with. An empty Efforts tries the model's default.
	Models, Efforts []string
	// Sheet, when set, is a reviewer's labels of (some of) the sampled records.
	Sheet string
	// Tolerance is how far below full agreement with the strongest a setting may be on its
	// worst field and still be recommended.
	Tolerance float64
	// Dir holds the sample, one run folder per setting and tune.json; Seed picks the sample.
	Dir  string
	Seed uint64
}

// TuneRow is one setting's outcome.
type TuneRow struct {
	Model  string `json:"model"`
	Effort string `json:"reasoning_effort,omitempty"`
	Out    string `json:"out"`
	// SampleUSD is what the sample cost; InputUSD that scaled to the whole input.
	SampleUSD float64 `json:"sample_cost_usd"`
	InputUSD  float64 `json:"input_cost_usd"`
	CostKnown bool    `json:"cost_known"`
	// MinAgreement and MeanKappa are against the strongest setting over the category fields;
	// ReviewAgreement against the sheet (nil without one).
	MinAgreement    float64            `json:"min_agreement"`
	MeanKappa       float64            `json:"mean_kappa"`
	Agreement       map[string]float64 `json:"agreement"`
	ReviewAgreement *float64           `json:"review_agreement,omitempty"`
	Recommended     bool               `json:"recommended"`
}

// TuneReport is tune.json.
type TuneReport struct {
	Input     string    `json:"input"`
	Records   int64     `json:"input_records"`
	Sample    int       `json:"sample"`
	Reference string    `json:"reference"`
	Tolerance float64   `json:"tolerance"`
	Rows      []TuneRow `json:"settings"`
	Command   string    `json:"recommended_command,omitempty"`
}

// Tune runs a sample of the input at each setting (in run folders of their own, so a second
// tune asks nothing new), compares each with the strongest and with a reviewer's sheet,
// estimates what the whole input costs at each, and recommends the cheapest setting within
// Tolerance of the strongest.
func Tune(ctx context.Context, o TuneOptions, deps Deps) (*TuneReport, error) {
	deps.defaults()
	switch {
	case o.Input == "":
		return nil, usagef("coordinator tune needs --input FILE")
	case o.Sample < 2:
		return nil, usagef("--sample %d: want at least 2 records", o.Sample)
	case o.Tolerance < 0 || o.Tolerance >= 1:
		return nil, usagef("--tolerance %v: want a share of disagreement from 0 to below 1, such as 0.05", o.Tolerance)
	}
	if len(o.Models) == 0 {
		o.Models = []string{o.Model}
	}
	efforts := o.Efforts
	if len(efforts) == 0 {
		efforts = []string{""}
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("tune --out %s: %w", o.Dir, err)
	}
	samplePath, total, err := writeSample(ctx, o.Input, o.IDField, o.Sample, max(o.Seed, 1), filepath.Join(o.Dir, "sample.jsonl"))
	if err != nil {
		return nil, err
	}
	rep := &TuneReport{Input: o.Input, Records: total, Sample: o.Sample, Tolerance: o.Tolerance}
	for _, m := range o.Models {
		for _, e := range efforts {
			name := m
			if e != "" {
				name += "-" + e
			}
			run := o.Options
			run.Input, run.Out, run.Model, run.ReasoningEffort = samplePath, filepath.Join(o.Dir, name), m, e
			run.Workers = min(max(o.Workers, 1), o.Sample)
			deps.Log.Info("tune: running the sample", "model", m, "reasoning_effort", e, "out", run.Out)
			quiet := deps
			quiet.Stdout = io.Discard
			sum, err := Run(ctx, run, quiet)
			if err != nil {
				return rep, fmt.Errorf("tune: %s: %w", name, err)
			}
			row := TuneRow{Model: m, Effort: e, Out: run.Out, SampleUSD: sum.CostUSD, CostKnown: sum.CostKnown}
			if sum.Succeeded > 0 {
				row.InputUSD = sum.CostUSD * float64(total) / float64(sum.Succeeded)
			}
			rep.Rows = append(rep.Rows, row)
		}
	}
	ref := rep.Rows[len(rep.Rows)-1]
	rep.Reference = ref.Out
	_, sch, err := loadRun(rundir.New(ref.Out))
	if err != nil {
		return rep, err
	}
	fields := sch.Categories()
	refLabels, err := compare.ReadCSV(rundir.New(ref.Out).FinalResults(), fields)
	if err != nil {
		return rep, err
	}
	var sheet *compare.Labels
	if o.Sheet != "" {
		if sheet, err = compare.ReadCSV(o.Sheet, fields); err != nil {
			return rep, usagef("--sheet %s: %w", o.Sheet, err)
		}
	}
	best := -1
	for i := range rep.Rows {
		r := &rep.Rows[i]
		l, err := compare.ReadCSV(rundir.New(r.Out).FinalResults(), fields)
		if err != nil {
			return rep, err
		}
		c, err := compare.Compare(l, refLabels, max(o.Seed, 1))
		if err != nil {
			return rep, err
		}
		r.MinAgreement, r.Agreement = 1, map[string]float64{}
		var kappas []float64
		for _, f := range c.Order {
			fd := c.Fields[f]
			if fd.Agreement != nil {
				r.Agreement[f] = *fd.Agreement
				r.MinAgreement = min(r.MinAgreement, *fd.Agreement)
			}
			if fd.Kappa != nil {
				kappas = append(kappas, *fd.Kappa)
			}
		}
		r.MeanKappa = mean(kappas)
		if sheet != nil {
			if rc, err := compare.Compare(l, sheet, max(o.Seed, 1)); err == nil {
				var agr []float64
				for _, f := range rc.Order {
					if a := rc.Fields[f].Agreement; a != nil {
						agr = append(agr, *a)
					}
				}
				if len(agr) > 0 {
					v := mean(agr)
					r.ReviewAgreement = &v
				}
			}
		}
		if r.MinAgreement >= 1-o.Tolerance && r.CostKnown && (best < 0 || r.InputUSD < rep.Rows[best].InputUSD) {
			best = i
		}
	}
	if best >= 0 {
		r := &rep.Rows[best]
		r.Recommended = true
		cmdline := fmt.Sprintf("coordinator run --input %s --model %s", o.Input, r.Model)
		if r.Effort != "" {
			cmdline += " --reasoning-effort " + r.Effort
		}
		rep.Command = cmdline
	}
	if err := safefile.WriteJSON(filepath.Join(o.Dir, "tune.json"), rep); err != nil {
		return rep, err
	}
	rep.print(deps.Stdout)
	return rep, nil
}

func mean(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

func (r *TuneReport) print(w io.Writer) {
	fmt.Fprintf(w, "tune: %d of %d records at each setting; reference (the strongest): %s\n\n", r.Sample, r.Records, filepath.Base(r.Reference))
	fmt.Fprintf(w, "%-28s %12s %14s %14s %10s %10s\n", "setting", "sample cost", "whole input", "min agreement", "kappa", "reviewer")
	for _, row := range r.Rows {
		name := row.Model
		if row.Effort != "" {
			name += " " + row.Effort
		}
		if row.Recommended {
			name += " *"
		}
		cost, whole := "unknown", "unknown"
		if row.CostKnown {
			cost, whole = fmt.Sprintf("$%.4f", row.SampleUSD), fmt.Sprintf("$%.2f", row.InputUSD)
		}
		rev := "-"
		if row.ReviewAgreement != nil {
			rev = fmt.Sprintf("%.1f%%", 100**row.ReviewAgreement)
		}
		fmt.Fprintf(w, "%-28s %12s %14s %13.1f%% %10.3f %10s\n", name, cost, whole, 100*row.MinAgreement, row.MeanKappa, rev)
	}
	if r.Command == "" {
		fmt.Fprintf(w, "\nno setting is within %.1f%% of the strongest on every field at a known price; keep the strongest, or raise --tolerance\n", 100*r.Tolerance)
		return
	}
	fmt.Fprintf(w, "\nrecommended (*): the cheapest setting within %.1f%% of the strongest on every field:\n  %s\n", 100*r.Tolerance, r.Command)
}

// writeSample writes n records of the input, picked by a hash of their ID with seed (the same
// sample every time), to path, and returns it with the input's record count.
func writeSample(ctx context.Context, in, idField string, n int, seed uint64, path string) (string, int64, error) {
	r, err := input.Open(in, input.Options{IDField: idField})
	if err != nil {
		return "", 0, err
	}
	defer r.Close()
	type pick struct {
		h    uint64
		data []byte
	}
	var picks []pick
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return "", 0, err
		}
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", 0, err
		}
		total++
		h := fnv.New64a()
		fmt.Fprintf(h, "%d\x00%s", seed, rec.ID)
		picks = append(picks, pick{h.Sum64(), append([]byte(nil), rec.Data...)})
		if len(picks) > 4*n {
			slices.SortFunc(picks, func(a, b pick) int { return cmp.Compare(a.h, b.h) })
			picks = picks[:n]
		}
	}
	slices.SortFunc(picks, func(a, b pick) int { return cmp.Compare(a.h, b.h) })
	picks = picks[:min(n, len(picks))]
	err = safefile.Write(path, 0o644, func(w io.Writer) error {
		for _, p := range picks {
			if _, err := w.Write(append(p.data, '\n')); err != nil {
				return err
			}
		}
		return nil
	})
	return path, total, err
}
