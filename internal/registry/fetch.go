package registry

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"

	"github.com/trialcat/trialcat/internal/lockfile"
	"github.com/trialcat/trialcat/internal/safefile"
)

// Checkpoint is FILE.fetch.json beside a fetch's output: what has been written for which query,
// saved after each page is on disk. A rerun goes on from it; Done says the output is whole.
type Checkpoint struct {
	Query     Query  `json:"query"`
	QueryKey  string `json:"query_key"`
	NextToken string `json:"next_page_token,omitempty"`
	// Studies and Bytes are what the partial file holds that counts: a rerun cuts it back to
	// Bytes (a page written after the last checkpoint) and goes on from NextToken.
	Studies int64 `json:"studies"`
	Bytes   int64 `json:"bytes"`
	Total   int64 `json:"total_count"`
	Pages   int64 `json:"pages"`
	// DataTimestamp is the registry's data version when the fetch began.
	DataTimestamp string `json:"data_timestamp,omitempty"`
	Done          bool   `json:"done"`
}

// Paths of a fetch's files.
func checkpointPath(out string) string { return out + ".fetch.json" }
func lockPath(out string) string       { return out + ".fetch.lock" }
func partialPath(out string) string    { return out + ".partial" }

// FetchOptions say what to fetch where.
type FetchOptions struct {
	Out   string
	Query Query
	// Max stops after this many studies (0: all).
	Max int64
	// Progress, when set, hears after each page: studies written and the total count.
	Progress func(studies, total int64)
}

// ErrOtherFetch means FILE.fetch.json is of another query.
var ErrOtherFetch = errors.New("a fetch of another query is in progress there")

// ErrBusy means another process is fetching into the same output, or syncing the same mirror.
var ErrBusy = errors.New("another process is working on it")

// ErrExists means the output exists and no checkpoint says it is this fetch's.
var ErrExists = errors.New("the output exists and is not this fetch's")

// Fetch writes the studies q selects to opts.Out, one compact JSON object a line, resuming from
// the checkpoint a killed fetch left. No study is written twice (by NCT ID), and the output
// appears under its name only when whole.
func Fetch(ctx context.Context, c *Client, opts FetchOptions) (Checkpoint, error) {
	if err := opts.Query.Check(); err != nil {
		return Checkpoint{}, err
	}
	key := opts.Query.Key()
	if err := os.MkdirAll(filepath.Dir(opts.Out), 0o755); err != nil {
		return Checkpoint{}, err
	}
	// Two fetches into one file would interleave their pages: the second is refused.
	lock, holder, err := lockfile.Acquire(lockPath(opts.Out))
	if errors.Is(err, lockfile.ErrHeld) {
		return Checkpoint{}, fmt.Errorf("%s: %w (pid %s is fetching into it); wait for it to end", opts.Out, ErrBusy, holder)
	}
	if err != nil {
		return Checkpoint{}, err
	}
	defer func() {
		lock.Release()
		_ = os.Remove(lockPath(opts.Out))
	}()
	cp, err := loadCheckpoint(checkpointPath(opts.Out))
	switch {
	case err == nil && cp.QueryKey != key:
		return cp, fmt.Errorf("%s: %w (%s); use the same query, or remove %s and %s to start over",
			opts.Out, ErrOtherFetch, checkpointPath(opts.Out), checkpointPath(opts.Out), partialPath(opts.Out))
	case err == nil && cp.Done:
		if _, serr := os.Stat(opts.Out); serr == nil {
			return cp, nil // already whole
		}
		cp = Checkpoint{} // the output was moved away: fetch again
	case errors.Is(err, os.ErrNotExist):
		if _, serr := os.Stat(opts.Out); serr == nil {
			return cp, fmt.Errorf("%s: %w; choose another --out, or move it away", opts.Out, ErrExists)
		}
		cp = Checkpoint{}
	case err != nil:
		return cp, err
	}
	cp.Query, cp.QueryKey = opts.Query, key
	f, seen, err := openPartial(partialPath(opts.Out), cp.Bytes)
	if err != nil {
		return cp, err
	}
	defer f.Close()
	if cp.Pages == 0 {
		if v, err := c.Version(ctx); err == nil {
			cp.DataTimestamp = v.DataTimestamp
		} else if ctx.Err() != nil {
			return cp, ctx.Err()
		}
	}
	tokens := map[string]bool{cp.NextToken: true} // the page tokens seen: a repeat is a loop
	for opts.Max <= 0 || cp.Studies < opts.Max {
		page, err := c.Page(ctx, opts.Query, cp.NextToken, cp.Pages == 0)
		if err != nil {
			return cp, err
		}
		if page.TotalCount != nil {
			cp.Total = *page.TotalCount
		}
		var buf bytes.Buffer
		for _, st := range page.Studies {
			if opts.Max > 0 && cp.Studies >= opts.Max {
				break
			}
			id := StudyID(st)
			h := idHash(id)
			if id != "" && seen[h] {
				continue // moved between pages while we paged: written once
			}
			seen[h] = true
			if err := json.Compact(&buf, st); err != nil {
				return cp, fmt.Errorf("a study of page %d is not JSON: %w", cp.Pages+1, err)
			}
			buf.WriteByte('\n')
			cp.Studies++
		}
		if _, err := f.Write(buf.Bytes()); err != nil {
			return cp, fmt.Errorf("write %s: %w", partialPath(opts.Out), err)
		}
		if err := f.Sync(); err != nil {
			return cp, fmt.Errorf("write %s: %w", partialPath(opts.Out), err)
		}
		cp.Bytes += int64(buf.Len())
		cp.Pages++
		if err := lying(cp, page, tokens); err != nil {
			return cp, err
		}
		tokens[page.NextPageToken] = true
		cp.NextToken = page.NextPageToken
		if err := saveCheckpoint(checkpointPath(opts.Out), cp); err != nil {
			return cp, err
		}
		if opts.Progress != nil {
			opts.Progress(cp.Studies, cp.Total)
		}
		if cp.NextToken == "" {
			break
		}
	}
	if err := f.Close(); err != nil {
		return cp, err
	}
	if err := os.Rename(partialPath(opts.Out), opts.Out); err != nil {
		return cp, err
	}
	cp.Done, cp.NextToken = true, ""
	return cp, saveCheckpoint(checkpointPath(opts.Out), cp)
}

// ErrLyingRegistry means the registry's paging cannot be right: a page token it gave before, or
// far more pages than its total count allows.
var ErrLyingRegistry = errors.New("the registry's paging does not add up")

// lying checks a page against what the fetch has seen: a next token seen before would page
// forever, and more than twice the pages the total count needs (or empty pages that go on) is
// a server that will not end.
func lying(cp Checkpoint, page Page, tokens map[string]bool) error {
	if page.NextPageToken == "" {
		return nil
	}
	if tokens[page.NextPageToken] {
		return fmt.Errorf("%w: page %d gave a page token it gave before (the fetch would never end); the %d studies so far are kept",
			ErrLyingRegistry, cp.Pages, cp.Studies)
	}
	size := int64(cp.Query.PageSize)
	if size <= 0 {
		size = DefaultPageSize
	}
	if cp.Total > 0 && cp.Pages > 2*(cp.Total/size+1)+10 {
		return fmt.Errorf("%w: %d pages for a total count of %d studies at %d a page; the %d studies so far are kept",
			ErrLyingRegistry, cp.Pages, cp.Total, size, cp.Studies)
	}
	if len(page.Studies) == 0 && cp.Pages > 1 && cp.Total == 0 {
		return fmt.Errorf("%w: an empty page %d with a next page token; the %d studies so far are kept", ErrLyingRegistry, cp.Pages, cp.Studies)
	}
	return nil
}

// openPartial opens the partial file for appending, cut back to size bytes, and returns the ID
// hashes of the studies it holds.
func openPartial(path string, size int64) (*os.File, map[uint64]bool, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if st.Size() < size {
		f.Close()
		return nil, nil, fmt.Errorf("%s holds %d bytes, its checkpoint says %d: it was changed; remove it and its .fetch.json to start over", path, st.Size(), size)
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return nil, nil, err
	}
	seen := map[uint64]bool{}
	sc := bufio.NewScanner(io.LimitReader(f, size))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		seen[idHash(StudyID(sc.Bytes()))] = true
	}
	if err := sc.Err(); err != nil {
		f.Close()
		return nil, nil, err
	}
	if _, err := f.Seek(size, io.SeekStart); err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, seen, nil
}

func idHash(id string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	return h.Sum64()
}

func loadCheckpoint(path string) (Checkpoint, error) {
	var cp Checkpoint
	b, err := os.ReadFile(path)
	if err != nil {
		return cp, err
	}
	if err := json.Unmarshal(b, &cp); err != nil {
		return cp, fmt.Errorf("%s is damaged (%v); remove it and the .partial beside it to start over", path, err)
	}
	return cp, nil
}

func saveCheckpoint(path string, cp Checkpoint) error {
	if err := safefile.WriteJSON(path, cp); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
