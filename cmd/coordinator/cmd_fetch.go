package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/trialcat/trialcat/internal/buildinfo"
	"github.com/trialcat/trialcat/internal/exitcode"
	"github.com/trialcat/trialcat/internal/registry"
)

const catRegistry = "The registry (ClinicalTrials.gov API v2)"

// registryFlags are the query and the politeness of fetch and sync; since adds --since and --max.
func registryFlags(since bool) []cli.Flag {
	fl := []cli.Flag{
		&cli.StringFlag{Name: "term", Category: catRegistry, Usage: "the API's query.term: studies mentioning `TEXT` anywhere"},
		&cli.StringFlag{Name: "cond", Category: catRegistry, Usage: "the API's query.cond: studies of a `CONDITION`"},
		&cli.StringSliceFlag{Name: "status", Category: catRegistry, Usage: "the API's filter.overallStatus: `STATUS` such as RECRUITING or COMPLETED (repeatable, or comma-separated)"},
		&cli.StringFlag{Name: "fields", Category: catRegistry, Usage: "the API's fields: a comma-separated `LIST` to fetch less of each study", DefaultText: "the whole study"},
		&cli.IntFlag{Name: "page-size", Value: registry.DefaultPageSize, Category: catRegistry, Usage: "studies per request (1 to 1,000)"},
		&cli.StringFlag{Name: "registry-url", Value: registry.DefaultBaseURL, Category: catRegistry, Usage: "the API's base `URL` (a mirror, or a fake in tests)"},
		&cli.IntFlag{Name: "fetch-rpm", Value: registry.DefaultRPM, Category: catRegistry, Usage: "requests a minute to the registry (it refuses about 50 from one address)"},
	}
	if since {
		fl = append(fl,
			&cli.StringFlag{Name: "since", Category: catRegistry, Usage: "studies last updated on or after `DATE` (YYYY-MM-DD; the LastUpdatePostDate)"},
			&cli.Int64Flag{Name: "max", Category: catRegistry, Usage: "stop after `N` studies", DefaultText: "all"})
	}
	return fl
}

// registryQuery reads the query flags.
func registryQuery(c *cli.Context) registry.Query {
	q := registry.Query{Term: c.String("term"), Cond: c.String("cond"), PageSize: c.Int("page-size"), Since: c.String("since")}
	for _, s := range c.StringSlice("status") {
		for _, p := range strings.Split(s, ",") {
			if p = strings.ToUpper(strings.TrimSpace(p)); p != "" {
				q.Status = append(q.Status, p)
			}
		}
	}
	if f := c.String("fields"); f != "" {
		q.Fields = strings.Split(f, ",")
	}
	return q
}

// registryClient is the API client of the flags; its retries are said on stderr.
func registryClient(c *cli.Context, stderr io.Writer) (*registry.Client, error) {
	if c.Int("fetch-rpm") <= 0 {
		return nil, fmt.Errorf("--fetch-rpm %d: want at least 1 request a minute: %w", c.Int("fetch-rpm"), exitcode.ErrUsage)
	}
	u := c.String("registry-url")
	if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		return nil, fmt.Errorf("--registry-url %q: want an http:// or https:// URL: %w", u, exitcode.ErrUsage)
	}
	return registry.New(registry.Config{BaseURL: u, RPM: c.Int("fetch-rpm"), UserAgent: buildinfo.UserAgent(),
		OnRetry: func(attempt int, err error, delay time.Duration) {
			fmt.Fprintf(stderr, "coordinator: %v; trying again in %s (attempt %d)\n", err, delay.Round(time.Millisecond), attempt+1)
		}}), nil
}

// progressTo prints a line per page.
func progressTo(w io.Writer, what string) func(n, total int64) {
	return func(n, total int64) {
		if total > 0 {
			fmt.Fprintf(w, "%s %d of %d studies (%.1f%%)\n", what, n, total, 100*float64(n)/float64(total))
			return
		}
		fmt.Fprintf(w, "%s %d studies\n", what, n)
	}
}

func fetchCommand(e env) command {
	return command{
		Command: cli.Command{
			Name:      "fetch",
			Usage:     "write the ClinicalTrials.gov studies a query selects to a JSON Lines file (resumable)",
			UsageText: "coordinator fetch --out FILE [--term T] [--cond C] [--status S] [--since DATE] [--max N]",
			Description: "Pages through the registry's API v2 at --fetch-rpm, honouring Retry-After and retrying 5xx, cut-off\n" +
				"pages and timeouts. After each page written, FILE.fetch.json records where it is: a killed fetch run again\n" +
				"goes on from there, and no study is written twice. FILE appears only when whole.\n\n" +
				examples(
					"coordinator fetch --out asthma.jsonl --cond asthma --status RECRUITING",
					"coordinator fetch --out november.jsonl --since 2026-11-01",
					"coordinator run --input asthma.jsonl --workers 20"),
			Flags: append([]cli.Flag{&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Usage: "the JSON Lines `FILE` to write"}}, registryFlags(true)...),
		},
		action: func(c *cli.Context) error {
			out := c.String("out")
			if out == "" {
				return fmt.Errorf("coordinator fetch needs --out FILE: %w", exitcode.ErrUsage)
			}
			client, err := registryClient(c, e.stderr)
			if err != nil {
				return err
			}
			q := registryQuery(c)
			if c.Int64("max") < 0 {
				return fmt.Errorf("--max %d: cannot be negative: %w", c.Int64("max"), exitcode.ErrUsage)
			}
			if err := q.Check(); err != nil {
				return fmt.Errorf("%w: %w", err, exitcode.ErrUsage)
			}
			cp, err := registry.Fetch(c.Context, client, registry.FetchOptions{Out: out, Query: q, Max: c.Int64("max"), Progress: progressTo(e.stderr, "fetched")})
			if err != nil {
				return registryError(err)
			}
			fmt.Fprintf(e.stdout, "%d studies in %s (registry data of %s)\n", cp.Studies, out, cp.DataTimestamp)
			return nil
		},
	}
}

// registryError gives the registry's errors their exit codes: a query or files the user must
// change is a usage error (2); a stop is an interruption (130); a registry that kept failing is 1.
func registryError(err error) error {
	var re *registry.Error
	switch {
	case errors.Is(err, registry.ErrOtherFetch), errors.Is(err, registry.ErrExists), errors.Is(err, registry.ErrOtherQuery), errors.Is(err, registry.ErrBusy),
		errors.As(err, &re) && re.Status >= 400 && re.Status < 500:
		return fmt.Errorf("%w: %w", err, exitcode.ErrUsage)
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("stopped: %w; run the same command again to go on: %w", err, exitcode.ErrInterrupted)
	}
	return fmt.Errorf("%w; what was fetched is kept: run the same command again to go on", err)
}

func syncCommand(e env) command {
	return command{
		Command: cli.Command{
			Name:      "sync",
			Usage:     "keep a local mirror of a query's studies current, fetching only what changed",
			UsageText: "coordinator sync --mirror DIR [--term T] [--cond C] [--status S]",
			Description: "The first sync fetches every study of the query into DIR/studies.jsonl. Each later one fetches the\n" +
				"studies updated since the last sync's data timestamp (less a day), writes a new studies.jsonl with them\n" +
				"replaced or added, streaming, and renames it into place: the previous mirror stays whole until then.\n" +
				"DIR/changes.jsonl says which studies were new, changed (by content) or unchanged.\n\n" +
				examples(
					"coordinator sync --mirror registry/ --cond diabetes",
					"coordinator run --input registry/studies.jsonl --out december --since-run november"),
			Flags: append([]cli.Flag{&cli.StringFlag{Name: "mirror", Usage: "the mirror's `DIR`"}}, registryFlags(false)...),
		},
		action: func(c *cli.Context) error {
			dir := c.String("mirror")
			if dir == "" {
				return fmt.Errorf("coordinator sync needs --mirror DIR: %w", exitcode.ErrUsage)
			}
			client, err := registryClient(c, e.stderr)
			if err != nil {
				return err
			}
			q := registryQuery(c)
			if err := q.Check(); err != nil {
				return fmt.Errorf("%w: %w", err, exitcode.ErrUsage)
			}
			res, err := registry.Sync(c.Context, client, registry.SyncOptions{Mirror: dir, Query: q, Progress: progressTo(e.stderr, "synced")})
			if err != nil {
				return registryError(err)
			}
			if res.First {
				fmt.Fprintf(e.stdout, "first sync: %d studies in %s (registry data of %s)\n", res.Studies, filepath.Join(dir, registry.MirrorStudies), res.DataTimestamp)
				return nil
			}
			fmt.Fprintf(e.stdout, "synced %s: %d studies fetched (updated since %s): %d new, %d changed, %d unchanged; %d studies in the mirror (registry data of %s)\n",
				dir, res.Fetched, res.Since, res.New, res.Changed, res.Unchanged, res.Studies, res.DataTimestamp)
			return nil
		},
	}
}
