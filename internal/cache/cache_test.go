package cache

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestPutGetAcrossWritersAndKills(t *testing.T) {
	c, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	k := Key("api.openai.com", []byte(`{"model":"m","messages":[]}`))
	if k == Key("localhost:8000", []byte(`{"model":"m","messages":[]}`)) {
		t.Error("the server's host is not part of the key")
	}
	if _, ok := c.Get(k); ok {
		t.Fatal("hit in an empty cache")
	}
	// Many writers of the same key at once: every read sees a whole entry.
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			if err := c.Put(k, Entry{Model: "m", Content: strings.Repeat("x", 1000+i), CreatedAt: time.Now()}); err != nil {
				t.Error(err)
			}
			if e, ok := c.Get(k); !ok || len(e.Content) < 1000 {
				t.Errorf("read a torn or missing entry: %v %d", ok, len(e.Content))
			}
		})
	}
	wg.Wait()
	// A kill mid-write leaves a temporary file: never read, pruned once old.
	tmp := filepath.Join(c.Dir(), k[:2], "."+k[:16]+".tmp-123")
	os.WriteFile(tmp, []byte(`{"model":"m","con`), 0o644)
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(tmp, old, old)
	// An entry that does not decode is a miss, not an error.
	bad := Key("h", []byte("bad"))
	os.MkdirAll(filepath.Join(c.Dir(), bad[:2]), 0o755)
	os.WriteFile(filepath.Join(c.Dir(), bad[:2], bad+".json"), []byte("{not json"), 0o644)
	if _, ok := c.Get(bad); ok {
		t.Error("a damaged entry was read as a hit")
	}
	st, err := c.Stats()
	if err != nil || st.Entries != 2 || st.Temps != 1 {
		t.Errorf("stats %+v, %v; want 2 entries and 1 unfinished write", st, err)
	}
	n, err := c.Prune(time.Now().Add(-time.Hour))
	if err != nil || n != 1 {
		t.Errorf("prune of entries older than an hour removed %d, %v; want the old temporary file only", n, err)
	}
	if n, _ := c.Prune(time.Now().Add(time.Minute)); n != 2 {
		t.Errorf("prune of everything removed %d; want 2", n)
	}
}
