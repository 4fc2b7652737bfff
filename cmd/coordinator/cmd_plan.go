package main

import (
	"fmt"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/trialcat/trialcat/internal/engine"
)

func planCommand(e env) command {
	g := settings(inputGroup(), batchGroup(), modelGroup(), requestGroup())
	return command{
		Command: cli.Command{
			Name:      "plan",
			Usage:     "list the ways to run an input (live, flex, Batch API; cache; agent) with cost and wall time, and pick the cheapest that meets a deadline",
			UsageText: "coordinator plan --input FILE --deadline 6h [the run's flags] [--latency 4s]",
			Description: "Estimates the run as `coordinator estimate` does, then prices and times each way to run it: live on the\n" +
				"default tier, live on the flex tier (Batch API prices, slower, may be refused), through the Batch API\n" +
				"(within 24 hours); with the response cache and without (when --cache is given); with the agent and\n" +
				"without (when --agent is given). Wall times are at --rpm/--tpm (the key's limits) with the concurrency\n" +
				"needed to reach them. It picks the cheapest way that meets --deadline and keeps --agent as given, and\n" +
				"prints the command line that runs it. No API call is made. Exit 1 when no way meets the deadline.\n\n" +
				examples(
					"coordinator plan --input testdata/trials.jsonl --deadline 6h",
					"coordinator plan --input trials.json --deadline 2h --workers 20 --rpm 5000 --tpm 2000000 --latency 3s",
					"coordinator plan --input trials.json --deadline 48h --cache auto"),
			Flags: append(withConfig(g.flags()), latencyFlag, deadlineFlag),
		},
		action: func(c *cli.Context) error {
			return engine.Plan(c.Context, engine.PlanOptions{
				EstimateOptions: engine.EstimateOptions{Options: g.options(c), Latency: c.Duration("latency")},
				Deadline:        c.Duration("deadline"), Argv: g.given(c),
			}, e.deps())
		},
	}
}

// deadlineFlag is plan's own.
var deadlineFlag = &cli.DurationFlag{Name: "deadline", Category: catRequests, DefaultText: "none: required", Usage: "the wall `TIME` the run must finish within, such as 6h or 90m (required)"}

// given are the settings of g that c was given (on the command line or by --config), one word
// each: "--name=value", or "--name" for a switch that is on; a repeated flag once a value.
func (g group) given(c *cli.Context) []string {
	var out []string
	for _, s := range g {
		name := s.flag.Names()[0]
		if !c.IsSet(name) {
			continue
		}
		switch v := c.Value(name).(type) {
		case bool:
			if v {
				out = append(out, "--"+name)
			} else {
				out = append(out, "--"+name+"=false")
			}
		case cli.StringSlice:
			for _, x := range v.Value() {
				out = append(out, "--"+name+"="+x)
			}
		case time.Duration:
			out = append(out, "--"+name+"="+v.String())
		case float64:
			out = append(out, "--"+name+"="+strconv.FormatFloat(v, 'g', -1, 64))
		default:
			out = append(out, fmt.Sprintf("--%s=%v", name, v))
		}
	}
	return out
}
