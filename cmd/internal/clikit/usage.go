// Package clikit holds what the commands share about their command lines: usage errors in the few
// lines a user needs (what was wrong, the nearest flag when one was misspelt, and where the full
// help is, never the whole help page after a typo), and the version line.
package clikit

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/trialcat/trialcat/internal/buildinfo"
	"github.com/trialcat/trialcat/internal/exitcode"
)

// OnError is the cli.OnUsageErrorFunc of the command called name (for a subcommand, the full
// "coordinator status"). The error it returns wraps exitcode.ErrUsage.
func OnError(name string) cli.OnUsageErrorFunc {
	return func(c *cli.Context, err error, _ bool) error {
		return Wrap(name, flags(c), err)
	}
}

// Wrap explains err, a parse error of the command called name with the given flags.
func Wrap(name string, fl []cli.Flag, err error) error {
	msg := strings.Replace(err.Error(), " -", " --", 1)
	if bad := unknownFlag(err); bad != "" && cli.SuggestFlag != nil {
		if s := cli.SuggestFlag(fl, bad, false); s != "" {
			msg += fmt.Sprintf("; did you mean %s?", s)
		}
	}
	return fmt.Errorf("%s (see %s --help): %w", msg, name, exitcode.ErrUsage)
}

func flags(c *cli.Context) []cli.Flag {
	if c.Command != nil && len(c.Command.Flags) > 0 {
		return c.Command.Flags
	}
	return c.App.Flags
}

// unknownFlag is the name in "flag provided but not defined: -name", or "".
func unknownFlag(err error) string {
	const prefix = "flag provided but not defined: -"
	msg := err.Error()
	i := strings.Index(msg, prefix)
	if i < 0 {
		return ""
	}
	return strings.TrimLeft(msg[i+len(prefix):], "-")
}

// Version is the line --version prints after the command's name.
func Version() string { return buildinfo.Read().String() }
