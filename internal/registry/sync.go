package registry

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/trialcat/trialcat/internal/lockfile"
	"github.com/trialcat/trialcat/internal/safefile"
)

// The files of a mirror folder.
const (
	MirrorStudies = "studies.jsonl" // the mirror: every study of the query, one a line
	MirrorState   = "sync.json"     // the last complete sync
	MirrorChanges = "changes.jsonl" // what the last sync found, a line per study it fetched
	mirrorDelta   = "delta.jsonl"   // a later sync's fetch of what was updated (resumable)
)

// DefaultOverlap is how far before the last sync's data timestamp a later sync asks from.
const DefaultOverlap = 24 * time.Hour

// SyncState is sync.json.
type SyncState struct {
	Query         Query     `json:"query"`
	QueryKey      string    `json:"query_key"`
	DataTimestamp string    `json:"data_timestamp"`
	Studies       int64     `json:"studies"`
	SyncedAt      time.Time `json:"synced_at"`
	Syncs         int       `json:"syncs"`
}

// Change is a line of changes.jsonl.
type Change struct {
	ID string `json:"id"`
	// Change is "new", "changed" (its content hash differs from the mirror's) or "unchanged".
	Change     string `json:"change"`
	LastUpdate string `json:"last_update,omitempty"`
	SHA256     string `json:"sha256"`
}

// Kinds of Change.
const (
	ChangeNew       = "new"
	ChangeChanged   = "changed"
	ChangeUnchanged = "unchanged"
)

// SyncOptions say which mirror to keep current, of which query.
type SyncOptions struct {
	Mirror string
	// Query selects the studies; a later sync must ask the same one (its Since is the sync's own).
	Query Query
	// Overlap is subtracted from the last data timestamp; 0 means DefaultOverlap.
	Overlap  time.Duration
	Progress func(studies, total int64)
	Now      func() time.Time
}

// SyncResult is what a sync did.
type SyncResult struct {
	First                   bool
	Fetched                 int64
	New, Changed, Unchanged int64
	Studies                 int64
	Since                   string
	DataTimestamp           string
}

// ErrOtherQuery means the mirror is of another query.
var ErrOtherQuery = errors.New("the mirror is of another query")

// Sync brings the mirror up to date: the first sync fetches every study of the query; a later
// one fetches those updated since the last sync's data timestamp less the overlap, and writes a
// new studies.jsonl with them replaced or added, by a streaming merge (the mirror is never held
// in memory, only what was fetched), renamed into place once whole. A sync killed at any point
// leaves the previous mirror as it was, and the next sync completes it.
func Sync(ctx context.Context, c *Client, opts SyncOptions) (SyncResult, error) {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	overlap := opts.Overlap
	if overlap <= 0 {
		overlap = DefaultOverlap
	}
	if err := os.MkdirAll(opts.Mirror, 0o755); err != nil {
		return SyncResult{}, err
	}
	lock, holder, err := lockfile.Acquire(filepath.Join(opts.Mirror, ".sync.lock"))
	if errors.Is(err, lockfile.ErrHeld) {
		return SyncResult{}, fmt.Errorf("%s: %w (pid %s is syncing it); wait for it to end", opts.Mirror, ErrBusy, holder)
	}
	if err != nil {
		return SyncResult{}, err
	}
	defer lock.Release()
	q := opts.Query
	q.Since = ""
	statePath := filepath.Join(opts.Mirror, MirrorState)
	studies := filepath.Join(opts.Mirror, MirrorStudies)
	var st SyncState
	b, err := os.ReadFile(statePath)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return firstSync(ctx, c, opts, q, now)
	case err != nil:
		return SyncResult{}, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return SyncResult{}, fmt.Errorf("%s is damaged (%v); move the mirror away and sync again", statePath, err)
	}
	if st.QueryKey != q.SelectionKey() {
		return SyncResult{}, fmt.Errorf("%s: %w; sync it with its own query (see %s), or give another --mirror", opts.Mirror, ErrOtherQuery, statePath)
	}
	if _, err := os.Stat(studies); err != nil {
		return SyncResult{}, fmt.Errorf("%s says the mirror was synced, but %s is missing (%v); move %s away to sync it from scratch", statePath, studies, err, statePath)
	}
	since, err := sinceOf(st.DataTimestamp, overlap)
	if err != nil {
		return SyncResult{}, err
	}
	dq := q
	dq.Since = since
	delta := filepath.Join(opts.Mirror, mirrorDelta)
	if old, err := loadCheckpoint(checkpointPath(delta)); err == nil && old.QueryKey != dq.Key() {
		// A delta begun with other settings (a page size, an overlap): it is only ours, start it over.
		_ = os.Remove(partialPath(delta))
		_ = os.Remove(delta)
		_ = os.Remove(checkpointPath(delta))
	}
	cp, err := Fetch(ctx, c, FetchOptions{Out: delta, Query: dq, Progress: opts.Progress})
	if err != nil {
		return SyncResult{Since: since}, err
	}
	res, err := mergeDelta(studies, delta, filepath.Join(opts.Mirror, MirrorChanges))
	res.Since, res.DataTimestamp = since, cp.DataTimestamp
	if err != nil {
		return res, err
	}
	st.DataTimestamp = cmp.Or(cp.DataTimestamp, st.DataTimestamp)
	st.Studies, st.SyncedAt, st.Syncs = res.Studies, now().UTC(), st.Syncs+1
	if err := safefile.WriteJSON(statePath, st); err != nil {
		return res, err
	}
	_ = os.Remove(delta)
	_ = os.Remove(checkpointPath(delta))
	return res, nil
}

// firstSync fetches the whole query into the mirror.
func firstSync(ctx context.Context, c *Client, opts SyncOptions, q Query, now func() time.Time) (SyncResult, error) {
	studies := filepath.Join(opts.Mirror, MirrorStudies)
	if _, err := os.Stat(studies); err == nil {
		if _, cerr := os.Stat(checkpointPath(studies)); cerr != nil {
			return SyncResult{}, fmt.Errorf("%s holds %s but no %s: not a mirror this tool made; give another --mirror", opts.Mirror, MirrorStudies, MirrorState)
		}
	}
	cp, err := Fetch(ctx, c, FetchOptions{Out: studies, Query: q, Progress: opts.Progress})
	if err != nil {
		return SyncResult{First: true}, err
	}
	res := SyncResult{First: true, Fetched: cp.Studies, New: cp.Studies, Studies: cp.Studies, DataTimestamp: cp.DataTimestamp}
	if err := writeChanges(filepath.Join(opts.Mirror, MirrorChanges), studies, nil, nil); err != nil {
		return res, err
	}
	st := SyncState{Query: q, QueryKey: q.SelectionKey(), DataTimestamp: cp.DataTimestamp, Studies: cp.Studies, SyncedAt: now().UTC(), Syncs: 1}
	if err := safefile.WriteJSON(filepath.Join(opts.Mirror, MirrorState), st); err != nil {
		return res, err
	}
	_ = os.Remove(checkpointPath(studies))
	return res, nil
}

// sinceOf is the date a later sync asks from: the data timestamp's date less the overlap.
func sinceOf(stamp string, overlap time.Duration) (string, error) {
	for _, layout := range []string{"2006-01-02T15:04:05", time.RFC3339, time.DateOnly} {
		if t, err := time.Parse(layout, stamp); err == nil {
			return t.Add(-overlap).Format(time.DateOnly), nil
		}
	}
	return "", fmt.Errorf("the last sync's data timestamp %q is not a time; move the mirror away and sync again", stamp)
}

func hashOf(raw []byte) string {
	s := sha256.Sum256(raw)
	return hex.EncodeToString(s[:])
}

// eachLine calls fn with each line of path.
func eachLine(path string, fn func(line []byte) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	for {
		line, err := br.ReadBytes('\n')
		if line = bytes.TrimRight(line, "\n"); len(line) > 0 {
			if ferr := fn(line); ferr != nil {
				return ferr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// mergeDelta writes the mirror with delta's studies replaced or added, and changes.jsonl.
func mergeDelta(studies, delta, changes string) (SyncResult, error) {
	var res SyncResult
	fresh := map[string][]byte{}
	var order []string
	if err := eachLine(delta, func(l []byte) error {
		id := StudyID(l)
		if _, dup := fresh[id]; !dup {
			order = append(order, id)
		}
		fresh[id] = append([]byte(nil), l...)
		res.Fetched++
		return nil
	}); err != nil {
		return res, err
	}
	kind := map[string]string{}
	err := safefile.Write(studies, 0o644, func(w io.Writer) error {
		if err := eachLine(studies, func(l []byte) error {
			res.Studies++
			id := StudyID(l)
			nl, ok := fresh[id]
			if !ok {
				_, err := w.Write(append(l, '\n'))
				return err
			}
			if _, seen := kind[id]; seen {
				return nil // the mirror repeats an ID: written once
			}
			kind[id] = ChangeUnchanged
			if !bytes.Equal(l, nl) {
				kind[id] = ChangeChanged
			}
			_, err := w.Write(append(nl, '\n'))
			return err
		}); err != nil {
			return err
		}
		for _, id := range order {
			if _, ok := kind[id]; ok {
				continue
			}
			kind[id] = ChangeNew
			res.Studies++
			if _, err := w.Write(append(fresh[id], '\n')); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	for _, k := range kind {
		switch k {
		case ChangeNew:
			res.New++
		case ChangeChanged:
			res.Changed++
		default:
			res.Unchanged++
		}
	}
	return res, writeChanges(changes, "", fresh, orderKinds(order, kind))
}

type idKind struct{ id, kind string }

func orderKinds(order []string, kind map[string]string) []idKind {
	out := make([]idKind, 0, len(order))
	for _, id := range order {
		out = append(out, idKind{id, kind[id]})
	}
	return out
}

// writeChanges writes changes.jsonl: every study of all (a first sync: all new), or the kinds of
// the studies fetched.
func writeChanges(path, all string, fresh map[string][]byte, kinds []idKind) error {
	return safefile.Write(path, 0o644, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		if all != "" {
			return eachLine(all, func(l []byte) error {
				return enc.Encode(Change{ID: StudyID(l), Change: ChangeNew, LastUpdate: LastUpdate(l), SHA256: hashOf(l)})
			})
		}
		for _, k := range kinds {
			l := fresh[k.id]
			if err := enc.Encode(Change{ID: k.id, Change: k.kind, LastUpdate: LastUpdate(l), SHA256: hashOf(l)}); err != nil {
				return err
			}
		}
		return nil
	})
}
