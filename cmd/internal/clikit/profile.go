package clikit

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/trialcat/trialcat/internal/profile"
)

// ProfileFlags are --cpuprofile and --memprofile, on every command of both programs (hidden
// from the help of the commands where they matter least).
func ProfileFlags(hidden bool) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "cpuprofile", Category: "Profiling", Hidden: hidden, Usage: "write a CPU profile of this process to `FILE` (go tool pprof); TRIALCAT_PPROF=DIR profiles every process of a run"},
		&cli.StringFlag{Name: "memprofile", Category: "Profiling", Hidden: hidden, Usage: "write an allocation profile of this process to `FILE` when it ends"},
	}
}

// Profiled runs action with the profiles c's flags (or TRIALCAT_PPROF) ask for; name names the
// process in TRIALCAT_PPROF's files. A profile that cannot be written is said, never fatal.
func Profiled(c *cli.Context, name string, action func() error) error {
	stop, err := profile.Start(profile.Options{CPU: c.String("cpuprofile"), Mem: c.String("memprofile")}.WithEnv(os.Getenv, name))
	if err != nil {
		fmt.Fprintln(c.App.ErrWriter, name+":", err)
	}
	runErr := action()
	if err := stop(); err != nil {
		fmt.Fprintln(c.App.ErrWriter, name+":", err)
	}
	return runErr
}
