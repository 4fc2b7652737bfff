package batch

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/trialcat/trialcat/internal/exitcode"
	"github.com/trialcat/trialcat/internal/input"
	"github.com/trialcat/trialcat/internal/record"
	"github.com/trialcat/trialcat/internal/rundir"
	"github.com/trialcat/trialcat/internal/safefile"
)

// Writer streams one batch file. The file appears under its final name only after Commit, so a
// half-written batch never looks complete.
type Writer struct {
	path string
	tmp  *os.File
	bw   *bufio.Writer
	n    int64
	// ids, when the file is named batch_N.json, are its records' IDs for its ID index.
	ids     []string
	idsPath string
}

// Create starts writing the batch file at path.
func Create(path string) (*Writer, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("create batch %s: %w", path, err)
	}
	w := &Writer{path: path, tmp: tmp, bw: bufio.NewWriterSize(tmp, 1<<20)}
	if f, err := rundir.ForBatch(path); err == nil {
		w.idsPath = f.BatchIDs
	}
	if _, err := w.bw.WriteString("["); err != nil {
		w.Abort()
		return nil, fmt.Errorf("write batch %s: %w", path, err)
	}
	return w, nil
}

// Add appends one record's JSON object; id is its ID, for the batch's ID index.
func (w *Writer) Add(id string, data json.RawMessage) error {
	if w.idsPath != "" {
		w.ids = append(w.ids, id)
	}
	sep := ",\n"
	if w.n == 0 {
		sep = "\n"
	}
	if _, err := w.bw.WriteString(sep); err != nil {
		return fmt.Errorf("write batch %s: %w", w.path, err)
	}
	if _, err := w.bw.Write(data); err != nil {
		return fmt.Errorf("write batch %s: %w", w.path, err)
	}
	w.n++
	return nil
}

// Commit finishes the file, syncs it and renames it into place.
func (w *Writer) Commit() error {
	err := func() error {
		if _, err := w.bw.WriteString("\n]\n"); err != nil {
			return err
		}
		if err := w.bw.Flush(); err != nil {
			return err
		}
		if err := w.tmp.Chmod(0o644); err != nil {
			return err
		}
		if err := w.tmp.Sync(); err != nil {
			return err
		}
		if err := w.tmp.Close(); err != nil {
			return err
		}
		// The index first: it is only used when it is as new as the batch file.
		if w.idsPath != "" {
			if err := safefile.Write(w.idsPath, 0o644, func(iw io.Writer) error {
				bw := bufio.NewWriter(iw)
				for _, id := range w.ids {
					// A JSON string a line: an ID may hold a line break.
					b, _ := json.Marshal(id)
					bw.Write(b)
					bw.WriteByte('\n')
				}
				return bw.Flush()
			}); err != nil {
				return err
			}
		}
		return os.Rename(w.tmp.Name(), w.path)
	}()
	if err != nil {
		_ = os.Remove(w.tmp.Name())
		return fmt.Errorf("commit batch %s: %w", w.path, err)
	}
	return nil
}

// Abort drops the unfinished file.
func (w *Writer) Abort() {
	_ = w.tmp.Close()
	_ = os.Remove(w.tmp.Name())
}

// Read streams the records of a batch file in order, finding each ID at idField (or the default
// ID fields). Record.Index is the position within the batch. It uses the input package's
// streaming parser, which finds IDs without decoding records into maps. Errors in the file wrap
// exitcode.ErrUsage and name the file and record.
//
// A batch file no newer than its ID index is one the split wrote (as Verify takes it): it is read
// a record a line, the IDs from the index, without parsing the records again.
func Read(path, idField string, fn func(record.Record) error) error {
	if ok, err := readIndexed(path, fn); ok || err != nil {
		return err
	}
	r, err := input.Open(path, input.Options{IDField: idField})
	if err != nil {
		return fmt.Errorf("batch %s: %w", path, err)
	}
	defer r.Close()
	if f := r.Format(); f != input.FormatJSON {
		return fmt.Errorf("batch %s: not a JSON array of records (read as %s): %w", path, f, exitcode.ErrUsage)
	}
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("batch %s: %w", path, err)
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
}

// IDs streams only the IDs of a batch file, in order: from its ID index (batch_N.ids) when
// that is at least as new as the batch file, else from the records (a batch edited by hand, a
// run split before the index existed).
func IDs(path, idField string, yield func(id string) error) error {
	if f, err := rundir.ForBatch(path); err == nil {
		if ok, err := fromIndex(f.BatchIDs, path, yield); ok || err != nil {
			return err
		}
	}
	return Read(path, idField, func(r record.Record) error { return yield(r.ID) })
}

// readIndexed streams the records of a batch file the split wrote and nobody changed since (its
// ID index is as new): the split writes "[", a compact record a line (each but the last followed
// by a comma) and "]", and the index an ID a line. ok is false when there is no usable index; a
// file that is not in that shape then is damaged, and the error says so.
func readIndexed(path string, fn func(record.Record) error) (ok bool, err error) {
	files, err := rundir.ForBatch(path)
	if err != nil {
		return false, nil
	}
	ist, err := os.Stat(files.BatchIDs)
	if err != nil {
		return false, nil
	}
	bf, err := os.Open(path)
	if err != nil {
		return false, nil
	}
	defer bf.Close()
	bst, err := bf.Stat()
	if err != nil || ist.ModTime().Before(bst.ModTime()) {
		return false, nil
	}
	damaged := func(what string) error {
		return fmt.Errorf("batch %s is not as the split wrote it (%s); restore it, or delete %s to have it read in full: %w",
			path, what, filepath.Base(files.BatchIDs), exitcode.ErrUsage)
	}
	br := bufio.NewReaderSize(bf, 256<<10)
	if head, err := br.ReadString('\n'); err != nil || head != "[\n" {
		return true, damaged("it does not start with a line holding [")
	}
	var n int64
	last := false
	ok, err = readIndex(files.BatchIDs, path, func(id string) error {
		line, err := br.ReadBytes('\n')
		if err != nil {
			return damaged(fmt.Sprintf("it ends after %d records; the index lists more", n))
		}
		if last {
			return damaged(fmt.Sprintf("record %d follows one without a comma", n+1))
		}
		data := line[:len(line)-1]
		if len(data) > 0 && data[len(data)-1] == ',' {
			data = data[:len(data)-1]
		} else {
			last = true
		}
		if len(data) < 2 || data[0] != '{' || data[len(data)-1] != '}' {
			return damaged(fmt.Sprintf("line %d is not one record", n+2))
		}
		rec := record.Record{Index: n, ID: id, Data: json.RawMessage(data)}
		n++
		return fn(rec)
	})
	if !ok {
		return false, nil // the index went away before it was opened: nothing read yet
	}
	if err != nil {
		return true, err
	}
	if n == 0 {
		return false, nil // nothing yielded: the parser says what an empty batch is
	}
	if tail, err := br.ReadString('\n'); (n > 0 && !last) || tail != "]\n" || err != nil {
		return true, damaged(fmt.Sprintf("it does not end with a line holding ] after the %d records of its index", n))
	}
	if _, err := br.ReadByte(); err != io.EOF {
		return true, damaged("it goes on after its closing ]")
	}
	return true, nil
}

// fromIndex streams the IDs of the index at idsPath when it is usable for the batch file at
// path; ok says whether it was.
func fromIndex(idsPath, path string, yield func(id string) error) (ok bool, err error) {
	ist, err := os.Stat(idsPath)
	if err != nil {
		return false, nil
	}
	bst, err := os.Stat(path)
	if err != nil || ist.ModTime().Before(bst.ModTime()) {
		return false, nil
	}
	return readIndex(idsPath, path, yield)
}

// readIndex streams the IDs of the index at idsPath (of the batch file at path); ok is false
// when it cannot be opened.
func readIndex(idsPath, path string, yield func(id string) error) (ok bool, err error) {
	f, err := os.Open(idsPath)
	if err != nil {
		return false, nil
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var id string
		if err := json.Unmarshal(sc.Bytes(), &id); err != nil {
			return true, fmt.Errorf("batch index %s: %w; delete it to read the IDs from %s", idsPath, err, path)
		}
		if err := yield(id); err != nil {
			return true, err
		}
	}
	if err := sc.Err(); err != nil {
		return true, fmt.Errorf("batch index %s: %w", idsPath, err)
	}
	return true, nil
}

// Verify refuses a batch file that no longer holds the records the split wrote into it: a
// record renamed, deleted, added or reordered, or a file cut short. The split's ID index
// (batch_N.ids) is the record of what it wrote; a batch file no newer than its index is taken as
// unchanged, and one edited since is read in full and compared, ID by ID. A batch without an
// index (split before the index existed, or not named batch_N.json) is not checked. The error
// wraps exitcode.ErrUsage and names the first difference.
func Verify(path, idField string) error {
	f, err := rundir.ForBatch(path)
	if err != nil {
		return nil
	}
	ist, err := os.Stat(f.BatchIDs)
	if err != nil {
		return nil
	}
	bst, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("batch %s: %w", path, err)
	}
	if !ist.ModTime().Before(bst.ModTime()) {
		return nil
	}
	var want []string
	if _, err := readIndex(f.BatchIDs, path, func(id string) error { want = append(want, id); return nil }); err != nil {
		return err
	}
	changed := func(format string, args ...any) error {
		return fmt.Errorf("%s was changed after the split: %s: %w", filepath.Base(path), fmt.Sprintf(format, args...), exitcode.ErrUsage)
	}
	i := 0
	err = Read(path, idField, func(rec record.Record) error {
		switch {
		case i >= len(want):
			return changed("record %d (%q) is not one the split wrote (it wrote %d)", i+1, rec.ID, len(want))
		case rec.ID != want[i]:
			return changed("record %d is %q where the split wrote %q", i+1, rec.ID, want[i])
		}
		i++
		return nil
	})
	if err != nil {
		if errors.Is(err, exitcode.ErrUsage) && strings.Contains(err.Error(), "was changed after the split") {
			return err
		}
		return changed("it cannot be read (%v)", err)
	}
	if i < len(want) {
		return changed("it holds %d records where the split wrote %d (%q is missing)", i, len(want), want[i])
	}
	return nil
}

// ContentHashes are the content hashes (record.ContentHash) of the records of the batch files
// at paths, by ID: what a run's records held, for --since-run and drift.
func ContentHashes(ctx context.Context, paths []string, idField string) (map[string]string, error) {
	out := map[string]string{}
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := Read(p, idField, func(rec record.Record) error {
			out[rec.ID] = record.ContentHash(rec.Data)
			return nil
		}); err != nil {
			return nil, err
		}
	}
	return out, nil
}
