package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"
	"gopkg.in/yaml.v3"

	"github.com/trialcat/trialcat/internal/buildinfo"
	"github.com/trialcat/trialcat/internal/exitcode"
	"github.com/trialcat/trialcat/internal/runspec"
)

// A settings file (--config FILE) holds a run's flags as YAML, one key per flag, named as on the
// command line (workers: 20, model: gpt-5-mini, timeout: 2m0s). A flag given on the command line
// wins over the file, and the file over the flag's environment variable and default. The file of
// a study can serve every command: a key another command takes (slurm's partition, say) is left
// alone by the commands without it, while a key no command takes is refused, since it is most
// likely a misspelt one.

const (
	configFlagName      = "config"
	printConfigFlagName = "print-config"
)

func configFlag() cli.Flag {
	return &cli.StringFlag{Name: configFlagName, Category: catConfig, EnvVars: []string{"TRIALCAT_CONFIG"},
		Usage: "read the run's flags from the YAML `FILE` (keys are the flags' names; the command line wins)"}
}

func printConfigFlag() cli.Flag {
	return &cli.BoolFlag{Name: printConfigFlagName, Category: catConfig,
		Usage: "print the effective settings as a --config file and exit, starting nothing"}
}

// withConfig makes the flags readable from a settings file: each is wrapped so that altsrc can set
// it, and --config is added.
func withConfig(flags []cli.Flag) []cli.Flag {
	out := make([]cli.Flag, 0, len(flags)+1)
	for _, f := range flags {
		out = append(out, alt(f))
	}
	return append(out, configFlag())
}

// alt wraps one flag for altsrc.
func alt(f cli.Flag) cli.Flag {
	switch f := f.(type) {
	case *cli.StringFlag:
		return altsrc.NewStringFlag(f)
	case *cli.IntFlag:
		return altsrc.NewIntFlag(f)
	case *cli.Int64Flag:
		return altsrc.NewInt64Flag(f)
	case *cli.Uint64Flag:
		return altsrc.NewUint64Flag(f)
	case *cli.Float64Flag:
		return altsrc.NewFloat64Flag(f)
	case *cli.BoolFlag:
		return altsrc.NewBoolFlag(f)
	case *cli.DurationFlag:
		return altsrc.NewDurationFlag(f)
	case *cli.StringSliceFlag:
		return altsrc.NewStringSliceFlag(f)
	}
	return f
}

// loadConfig is the Before of a command with --config: it reads the file, refuses keys no
// command takes and values of the wrong kind, and sets every flag the command line left unset.
// flags are the command's (wrapped by withConfig); known are the flag names of every coordinator
// command.
func loadConfig(flags []cli.Flag, known map[string]bool) cli.BeforeFunc {
	return func(c *cli.Context) error {
		path := c.String(configFlagName)
		if path == "" {
			return nil
		}
		values, err := readConfig(path, flags, known)
		if err != nil {
			return err
		}
		if err := altsrc.ApplyInputSourceValues(c, altsrc.NewMapInputSource(path, values), flags); err != nil {
			return fmt.Errorf("--config %s: %w: %w", path, err, exitcode.ErrUsage)
		}
		return nil
	}
}

// readConfig parses the settings file into the values altsrc expects for each flag.
func readConfig(path string, flags []cli.Flag, known map[string]bool) (map[interface{}]interface{}, error) {
	data, err := readSettingsFile(path)
	if err != nil {
		return nil, err
	}
	raw := map[string]interface{}{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("--config %s is not a YAML mapping of flag names to values (%w); `coordinator run --print-config` writes one: %w", path, err, exitcode.ErrUsage)
	}
	byName := map[string]cli.Flag{}
	for _, f := range flags {
		for _, n := range f.Names() {
			byName[n] = f
		}
	}
	values := map[interface{}]interface{}{}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := raw[k]
		if !known[k] {
			hint := ""
			if s := cli.SuggestFlag(flagList(known), k, true); s != "" {
				hint = fmt.Sprintf("; did you mean %s?", strings.TrimLeft(s, "-"))
			}
			return nil, fmt.Errorf("--config %s: %q is not a setting of any coordinator command%s: %w", path, k, hint, exitcode.ErrUsage)
		}
		f, ok := byName[k]
		if !ok || v == nil {
			continue // another command's setting, or left empty
		}
		nv, err := configValue(f, v)
		if err != nil {
			return nil, fmt.Errorf("--config %s: %s: %w: %w", path, k, err, exitcode.ErrUsage)
		}
		values[k] = nv
	}
	return values, nil
}

// maxConfigBytes bounds a settings file: a study's settings are a few kilobytes.
const maxConfigBytes = 1 << 20

// readSettingsFile reads a settings file that is a regular file of at most maxConfigBytes (not a
// device such as /dev/zero, a FIFO or a folder, which would be read for ever or not at all).
func readSettingsFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--config: %w: %w", err, exitcode.ErrUsage)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("--config: %w: %w", err, exitcode.ErrUsage)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("--config %s is not a regular file: %w", path, exitcode.ErrUsage)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("--config: %w: %w", err, exitcode.ErrUsage)
	}
	if len(data) > maxConfigBytes {
		return nil, fmt.Errorf("--config %s is over %d bytes: a settings file holds a run's flags, one a line: %w", path, maxConfigBytes, exitcode.ErrUsage)
	}
	return data, nil
}

// configValue turns a YAML value into the type altsrc reads for the flag: a number where a
// string is wanted (batches: 40) is its text, a whole number where a fraction is wanted is a
// float, and a list where one value is wanted is refused.
func configValue(f cli.Flag, v interface{}) (interface{}, error) {
	switch f.(type) {
	case *cli.StringSliceFlag, *altsrc.StringSliceFlag:
		switch v := v.(type) {
		case []interface{}:
			return v, nil
		default:
			return []interface{}{fmt.Sprint(v)}, nil
		}
	}
	if _, isList := v.([]interface{}); isList {
		return nil, errors.New("a list, but the flag takes one value")
	}
	if _, isMap := v.(map[string]interface{}); isMap {
		return nil, errors.New("a mapping, but the flag takes one value")
	}
	switch f.(type) {
	case *cli.StringFlag, *altsrc.StringFlag:
		return fmt.Sprint(v), nil
	case *cli.Float64Flag, *altsrc.Float64Flag:
		switch n := v.(type) {
		case int:
			return float64(n), nil
		case float64:
			return n, nil
		}
		return nil, fmt.Errorf("%v is not a number", v)
	case *cli.DurationFlag, *altsrc.DurationFlag:
		s := fmt.Sprint(v)
		if _, err := time.ParseDuration(s); err != nil {
			return nil, fmt.Errorf("%q is not a duration such as 90s or 2m0s", s)
		}
		return s, nil
	}
	return v, nil
}

func flagList(known map[string]bool) []cli.Flag {
	names := make([]string, 0, len(known))
	for n := range known {
		names = append(names, n)
	}
	sort.Strings(names)
	fl := make([]cli.Flag, 0, len(names))
	for _, n := range names {
		fl = append(fl, &cli.StringFlag{Name: n})
	}
	return fl
}

// printConfig writes the effective settings of g (command line, settings file, environment and
// defaults together) as a settings file. A base URL's user:password is left out, as everywhere.
func printConfig(w io.Writer, c *cli.Context, g group) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# trialcat settings (coordinator %s), for --config FILE.\n", buildinfo.Release)
	fmt.Fprintf(&b, "# The command line wins over this file; delete a line to take the default.\n")
	cat := ""
	for _, s := range g {
		name := s.flag.Names()[0]
		if name == configFlagName || name == printConfigFlagName {
			continue
		}
		vf, ok := s.flag.(cli.VisibleFlag)
		if ok && !vf.IsVisible() && !c.IsSet(name) {
			continue
		}
		if cf, ok := s.flag.(cli.CategorizableFlag); ok && cf.GetCategory() != cat {
			cat = cf.GetCategory()
			fmt.Fprintf(&b, "\n# %s\n", cat)
		}
		if name == "temperature" && !c.IsSet(name) {
			fmt.Fprintf(&b, "# temperature: not sent\n")
			continue
		}
		v := c.Value(name)
		switch x := v.(type) {
		case time.Duration:
			v = x.String()
		case cli.StringSlice:
			v = x.Value()
		case *cli.StringSlice:
			v = x.Value()
		}
		if name == "base-url" {
			v, _ = runspec.PublicURL(fmt.Sprint(v))
		}
		out, err := yaml.Marshal(map[string]interface{}{name: v})
		if err != nil {
			return fmt.Errorf("print the settings: %s: %w", name, err)
		}
		b.Write(out)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
