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

	"github.com/trialcat/trialcat/cmd/internal/clikit"
	"github.com/trialcat/trialcat/internal/engine"
	"github.com/trialcat/trialcat/internal/exitcode"
)

// env is what the commands reach outside themselves: their streams, the environment and a second
// Ctrl-C. main passes the process's own; tests pass buffers and a map.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	// hardStop fires on a second Ctrl-C: every worker is killed at once.
	hardStop <-chan struct{}
}

func osEnv(hardStop <-chan struct{}) env {
	return env{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, hardStop: hardStop}
}

// deps are the engine's connections for a command that only reads, writes files and prints.
func (e env) deps() engine.Deps {
	return engine.Deps{Log: e.logger("info", e.stderr), Stdout: e.stdout, Getenv: e.getenv}
}

func (e env) logger(level string, out io.Writer) hclog.Logger {
	format := time.RFC3339 // files and CI logs get full timestamps
	if f, ok := out.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
		format = "15:04:05.000" // a terminal gets short times
	}
	return hclog.New(&hclog.LoggerOptions{Name: "coordinator", Level: hclog.LevelFromString(level), Output: out, Color: hclog.AutoColor, TimeFormat: format})
}

// command is a subcommand as the files cmd_*.go declare it.
type command struct {
	cli.Command
	// args is how many arguments the command takes: 0 (the default) refuses any, -1 takes any
	// number (its action checks them).
	args int
	// action runs the command; parse errors never reach it.
	action func(c *cli.Context) error
}

// app builds the command line. ran is set once flag parsing succeeded, so that an error after
// it is the command's own and one before it a usage error.
func app(e env, ran *bool) *cli.App {
	known := map[string]bool{} // every flag name of every command, for --config
	build := func(cmd command) *cli.Command {
		c := cmd.Command
		name := "coordinator"
		if c.Name != "" {
			name += " " + c.Name
		}
		c.OnUsageError = clikit.OnError(name)
		c.Flags = append(c.Flags, clikit.ProfileFlags(c.Name != "" && c.Name != "run")...)
		for _, f := range c.Flags {
			for _, n := range f.Names() {
				known[n] = true
			}
			if f.Names()[0] == configFlagName {
				c.Before = loadConfig(c.Flags, known)
			}
		}
		c.Action = func(ctx *cli.Context) error {
			*ran = true
			if cmd.args == 0 && ctx.NArg() > 0 {
				hint := ""
				if c.Name == "" {
					if s := cli.SuggestCommand(ctx.App.Commands, ctx.Args().First()); s != "" {
						hint = "; " + strings.Replace(s, "Did you", "did you", 1)
					}
				}
				return fmt.Errorf("unexpected arguments %q%s (see %s --help): %w", ctx.Args().Slice(), hint, name, exitcode.ErrUsage)
			}
			return clikit.Profiled(ctx, "coordinator", func() error { return cmd.action(ctx) })
		}
		return &c
	}
	root := build(runCommand(e, ""))
	commands := []*cli.Command{build(runCommand(e, "run"))}
	for _, cmd := range []command{
		estimateCommand(e), splitCommand(e), slurmCommand(e), k8sCommand(e),
		statusCommand(e), mergeCommand(e), exportCommand(e), importCommand(e), cancelCommand(e),
		compareCommand(e), sampleCommand(e), cacheCommand(e), limitsCommand(e), fetchCommand(e), syncCommand(e), driftCommand(e), reviewCommand(e), tuneCommand(e), planCommand(e),
	} {
		commands = append(commands, build(cmd))
	}
	return &cli.App{
		Name:           "coordinator",
		Usage:          "categorize records with an LLM using isolated parallel worker processes",
		UsageText:      root.UsageText,
		Description:    root.Description,
		Version:        clikit.Version(),
		Writer:         e.stdout,
		ErrWriter:      e.stderr,
		OnUsageError:   root.OnUsageError,
		ExitErrHandler: func(*cli.Context, error) {}, // never os.Exit inside Run: children must be stopped first
		// A repeated flag is one value each time: "--mcp 'server --tables a,b'" and
		// "--sbatch-arg=--exclude=n1,n2" keep their commas.
		DisableSliceFlagSeparator: true,
		Flags:                     root.Flags,
		Before:                    root.Before,
		Action:                    root.Action,
		Commands:                  commands,
	}
}

func run(ctx context.Context, args []string, e env) error {
	ran := false
	args = hoistFlags(args, "compare", map[string]bool{"--input": true, "--out": true, "-o": true, "--seed": true, "--target": true})
	args = hoistFlags(args, "import", map[string]bool{"--out": true, "-o": true, "--worker-bin": true})
	args = hoistFlags(args, "cache", map[string]bool{"--cache": true, "--older-than": true})
	args = hoistFlags(args, "drift", map[string]bool{"--html": true})
	args = hoistFlags(args, "review", map[string]bool{"--out": true, "-o": true})
	err := app(e, &ran).RunContext(ctx, args)
	if !ran && err != nil && !errors.Is(err, exitcode.ErrUsage) {
		err = fmt.Errorf("%w: %w", err, exitcode.ErrUsage)
	}
	if err != nil && !errors.Is(err, exitcode.ErrInterrupted) {
		fmt.Fprintln(e.stderr, "coordinator:", err)
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

// examples formats a help text's worked examples.
func examples(lines ...string) string {
	return "Examples:\n  " + strings.Join(lines, "\n  ")
}
