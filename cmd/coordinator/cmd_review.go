package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/trialcat/trialcat/internal/engine"
	"github.com/trialcat/trialcat/internal/exitcode"
)

func reviewCommand(e env) command {
	return command{
		Command: cli.Command{
			Name:      "review",
			Usage:     "import a person's corrections (a filled review sheet) into a run; they survive every rerun",
			UsageText: "coordinator review import SHEET.csv --out RUN",
			Description: "SHEET is the sheet coordinator sample writes, filled in, or any CSV whose first column is the record ID\n" +
				"and whose columns are review_<field>. Every filled cell is checked against the run's schema first: one bad\n" +
				"value and nothing is imported. Corrections are kept in RUN/corrections.json by record and content; every\n" +
				"merge applies them to final_results.csv (source review) while the record is unchanged, and reports the rest\n" +
				"as stale.\n\n" +
				examples(
					"coordinator sample --out run1 -n 50",
					"coordinator review import run1/review_sample.csv --out run1"),
			Flags: []cli.Flag{outSetting("the run `DIR` the sheet reviews").flag},
		},
		args: -1,
		action: func(c *cli.Context) error {
			if c.NArg() != 2 || c.Args().First() != "import" {
				return fmt.Errorf("coordinator review takes import SHEET.csv (see coordinator review --help): %w", exitcode.ErrUsage)
			}
			return engine.ReviewImport(c.Context, engine.ReviewOptions{Sheet: c.Args().Get(1), Out: c.String("out")}, e.deps())
		},
	}
}
