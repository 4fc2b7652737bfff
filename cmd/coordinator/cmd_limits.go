package main

import (
	"github.com/urfave/cli/v2"

	"github.com/trialcat/trialcat/internal/engine"
)

func limitsCommand(e env) command {
	return command{
		Command: cli.Command{
			Name:      "limits",
			Usage:     "serve a split run's one rate limit (--rpm/--tpm) over TCP to workers a scheduler runs, until Ctrl-C",
			UsageText: "coordinator limits [--out DIR] [--listen ADDR]",
			Description: "Writes DIR/limits.json (the address and a random token, mode 0600). Workers run with --run-dir DIR read it,\n" +
				"authenticate with the token and take their permits here, so the whole limit is used however many run at once.\n" +
				"A worker that cannot reach it keeps to its equal share (--rate-share) and says so. Before a worker\n" +
				"trusts it, the server proves it holds the token; the token itself never crosses the network. It\n" +
				"listens on this machine only unless --listen says otherwise. Ctrl-C stops it (exit 0).\n\n" +
				examples(
					"coordinator limits --out /shared/run1 --listen :7070 &   # for tasks on other nodes",
					"sbatch --array=0-49%20 --wrap 'worker --run-dir /shared/run1 --rate-share 20'"),
			Flags: []cli.Flag{runDirFlag(), &cli.StringFlag{Name: "listen", Value: engine.DefaultLimitListen,
				Usage: "listen `ADDR`: this machine only by default; :PORT (or HOST:PORT) for tasks on other nodes"}},
		},
		action: func(c *cli.Context) error {
			return engine.Limits(c.Context, engine.LimitsOptions{Out: c.String("out"), Listen: c.String("listen")}, e.deps())
		},
	}
}
