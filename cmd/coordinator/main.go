// Command coordinator categorizes a file of records with an LLM: it splits the input into
// batch_N.json files, runs one isolated worker process per batch, and merges their results.
//
//	coordinator --workers 20 --input trials.json
//
// Each subcommand is one file here (cmd_<name>.go): its flags, its help with examples, and a thin
// function over the library packages.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/trialcat/trialcat/internal/exitcode"
	"github.com/trialcat/trialcat/internal/signals"
)

func main() {
	// A reader of --stream - that goes away (`| head`) must not kill the run before it has
	// stopped its workers and merged: a write to the closed pipe fails instead, and is said.
	signal.Ignore(syscall.SIGPIPE)
	ctx, hardStop, stop := signals.Context(context.Background())
	err := run(ctx, os.Args, osEnv(hardStop))
	stop()
	os.Exit(exitcode.Code(err))
}
