package results

import (
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/trialcat/trialcat/internal/safefile"
)

// Results files written by earlier versions end their header before the bookkeeping columns
// added since (the first ended at worker). They are read with those columns' defaults; a worker
// that appends to one rewrites it first with the columns added (under its batch lock), so a run
// started by an earlier version resumes.

// added are the bookkeeping columns added after the first layout, in order, with the cell a row
// written before each gets.
var added = []struct{ col, cell string }{
	{ColCached, "false"}, {ColCachedTokens, "0"}, {ColTurns, "0"}, {ColToolCalls, ""}, {ColSource, ""},
	{ColDecidedBy, ""}, {ColEscalated, ""}, {ColServiceTier, ""},
}

// missing is how many of the added columns got lacks at its end to be want, or 0 when got is not
// an earlier form of want.
func missing(got, want []string) int {
	for k := 1; k <= len(added) && k < len(want); k++ {
		cut := want[:len(want)-k]
		tail := want[len(want)-k:]
		ok := true
		for i, c := range tail {
			if c != added[len(added)-k+i].col {
				ok = false
				break
			}
		}
		if ok && slices.Equal(got, cut) {
			return k
		}
	}
	return 0
}

// IsLegacy reports whether got is want's header as an earlier version wrote it.
func IsLegacy(got, want []string) bool { return missing(got, want) > 0 }

// Upgraded returns a row of a legacy file with the cells of the columns added since, up to width
// cells.
func Upgraded(row []string, width int) []string {
	out := slices.Clone(row)
	for k := width - len(row); k > 0 && k <= len(added); k-- {
		out = append(out, added[len(added)-k].cell)
	}
	return out
}

// upgrade rewrites a legacy results file at path with header, atomically; a torn last line is
// left out (the worker redoes its record).
func upgrade(path string, header []string) error {
	return safefile.Write(path, 0o644, func(w io.Writer) error {
		cw := csv.NewWriter(w)
		if err := cw.Write(header); err != nil {
			return err
		}
		if _, _, err := read(path, nil, func(row []string) error {
			return cw.Write(Upgraded(row, len(header)))
		}); err != nil {
			return err
		}
		cw.Flush()
		return cw.Error()
	})
}

// upgradeIfLegacy rewrites path when its header is an earlier form of header.
func upgradeIfLegacy(path string, header []string) error {
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
		return fmt.Errorf("add the columns added since to %s (written by an earlier version): %w", path, err)
	}
	return nil
}
