package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/trialcat/trialcat/internal/exitcode"

	"github.com/trialcat/trialcat/internal/quality"
)

func driftCommand(e env) command {
	return command{
		Command: cli.Command{
			Name:      "drift",
			Usage:     "how labels moved between two runs, apart for records whose content changed and those that did not",
			UsageText: "coordinator drift BEFORE_OUT AFTER_OUT [--json] [--html FILE]",
			Description: "Counts the new, removed, changed and unchanged records (by their content, as each run's batch files hold\n" +
				"it) and, per field, how many labels moved on each kind. A label that moves on an unchanged record is the\n" +
				"model or the settings drifting, not the registry.\n\n" +
				examples(
					"coordinator drift november december",
					"coordinator drift november december --json > drift.json",
					"coordinator drift november december --html drift.html"),
			Flags: []cli.Flag{
				&cli.BoolFlag{Name: "json", Usage: "write the report as JSON"},
				&cli.StringFlag{Name: "html", Usage: "also write the report as a page to `FILE`"},
			},
		},
		args: -1,
		action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return fmt.Errorf("coordinator drift takes two run folders, the earlier and the later run (see coordinator drift --help): %w", exitcode.ErrUsage)
			}
			return quality.Drift(c.Context, quality.DriftOptions{Before: c.Args().Get(0), After: c.Args().Get(1), JSON: c.Bool("json"), HTML: c.String("html")},
				quality.Deps{Stdout: e.stdout})
		},
	}
}
