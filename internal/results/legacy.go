package results

import (
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/trialcat/trialcat/internal/safefile"
)

// Results files written before the cached column existed end their header at worker. They are
// read as answers not from the cache; a worker that appends to one rewrites it first with the
// column added (under its batch lock), so a run started by an earlier version resumes.

// legacyOf is header without its last column when that column is ColCached: the header an
// earlier version wrote.
func legacyOf(header []string) []string {
	if n := len(header); n > 0 && header[n-1] == ColCached {
		return header[:n-1]
	}
	return nil
}

// IsLegacy reports whether got is want's header as an earlier version wrote it.
func IsLegacy(got, want []string) bool {
	l := legacyOf(want)
	return l != nil && slices.Equal(got, l)
}

// Upgraded returns a row of a legacy file with the cached cell added ("false").
func Upgraded(row []string) []string { return append(slices.Clone(row), "false") }

// upgrade rewrites a legacy results file at path with header, atomically; a torn last line is
// left out (the worker redoes its record).
func upgrade(path string, header []string) error {
	return safefile.Write(path, 0o644, func(w io.Writer) error {
		cw := csv.NewWriter(w)
		if err := cw.Write(header); err != nil {
			return err
		}
		if _, _, err := read(path, nil, func(row []string) error {
			return cw.Write(Upgraded(row))
		}); err != nil {
			return err
		}
		cw.Flush()
		return cw.Error()
	})
}

// upgradeIfLegacy rewrites path when its header is header's legacy form.
func upgradeIfLegacy(path string, header []string) error {
	if legacyOf(header) == nil {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil // missing: nothing to upgrade
	}
	got, _ := csv.NewReader(f).Read()
	f.Close()
	if !IsLegacy(got, header) {
		return nil
	}
	if err := upgrade(path, header); err != nil {
		return fmt.Errorf("add the cached column to %s (written by an earlier version): %w", path, err)
	}
	return nil
}
