// Package cache stores answers content-addressed by everything that decides them (the server,
// the model, the whole request body: messages, schema, parameters), so a run over a fresh
// download asks only the records whose prompt changed or that are new. One file per answer,
// DIR/ab/<sha256>.json, written to a temporary file in the same folder and renamed into place:
// many worker processes, and tasks on other nodes sharing the file system, read and write it
// without locks, and a kill never leaves a torn entry (a half-written temporary file is never
// read, and is pruned).
package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Entry is one stored answer.
type Entry struct {
	// Key is the key the entry was stored under: an entry found under another key (a file
	// copied or renamed by hand) is not this request's answer. Entries written before the key
	// was stored have none and are taken as they are.
	Key string `json:"key,omitempty"`
	// Model is the model that answered; Content the answer text.
	Model   string `json:"model"`
	Content string `json:"content"`
	// The tokens the answer took when it was asked (it costs nothing when reused).
	InputTokens       int64     `json:"input_tokens"`
	CachedInputTokens int64     `json:"cached_input_tokens"`
	OutputTokens      int64     `json:"output_tokens"`
	CreatedAt         time.Time `json:"created_at"`
}

// Cache is a folder of entries.
type Cache struct{ dir string }

// Open returns the cache in dir, creating it.
func Open(dir string) (*Cache, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("response cache %s: %w", dir, err)
	}
	return &Cache{dir: dir}, nil
}

// Dir is the cache's folder.
func (c *Cache) Dir() string { return c.dir }

// Key addresses an answer: a hash of the server's host and the request body, which holds the
// model, the messages, the schema and every parameter sent.
func Key(host string, body []byte) string {
	h := sha256.New()
	h.Write([]byte("trialcat-cache-v1\x00"))
	h.Write([]byte(host))
	h.Write([]byte{0})
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// Host is the part of a base URL that keys answers: its host and port ("" for OpenAI's
// default), so the same model on another server is another answer.
func Host(baseURL string) string {
	if u, err := url.Parse(baseURL); err == nil && u.Host != "" {
		return u.Host
	}
	return baseURL
}

func (c *Cache) path(key string) string {
	return filepath.Join(c.dir, key[:2], key+".json")
}

// Get returns the entry of key, if any. An entry that does not decode (a disk error, a file
// written by something else) is a miss.
func (c *Cache) Get(key string) (Entry, bool) {
	e, err := c.Lookup(key)
	return e, err == nil
}

// ErrMiss is Lookup's error for a key the cache holds no answer for.
var ErrMiss = errors.New("not in the cache")

// Lookup is Get with the reason of a miss: ErrMiss when there is no entry, or an error saying
// why the entry there cannot be used (damaged, empty, or stored under another key). Either
// way the request is asked again.
func (c *Cache) Lookup(key string) (Entry, error) {
	var e Entry
	path := c.path(key)
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return Entry{}, ErrMiss
	case err != nil:
		return Entry{}, fmt.Errorf("cache entry %s: %w", path, err)
	}
	if err := json.Unmarshal(data, &e); err != nil {
		return Entry{}, fmt.Errorf("cache entry %s is damaged (%v); it is asked again and replaced", path, err)
	}
	switch {
	case e.Content == "":
		return Entry{}, fmt.Errorf("cache entry %s holds no answer; it is asked again and replaced", path)
	case e.Key != "" && e.Key != key:
		return Entry{}, fmt.Errorf("cache entry %s was stored for another request (key %s); it is asked again and replaced", path, e.Key)
	}
	return e, nil
}

// Put stores e under key, atomically.
func (c *Cache) Put(key string, e Entry) error {
	e.Key = key
	dir := filepath.Dir(c.path(key))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("response cache: %w", err)
	}
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+key[:16]+".tmp-*")
	if err != nil {
		return fmt.Errorf("response cache: %w", err)
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("response cache: %w", err)
	}
	if err := os.Rename(f.Name(), c.path(key)); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("response cache: %w", err)
	}
	return nil
}

// Stats are a cache's size.
type Stats struct {
	Entries        int
	Bytes          int64
	Oldest, Newest time.Time
	// Temps counts leftover temporary files (a kill mid-write).
	Temps int
}

// Stats walks the cache.
func (c *Cache) Stats() (Stats, error) {
	var st Stats
	err := c.walk(func(path string, info fs.FileInfo, temp bool) error {
		if temp {
			st.Temps++
			return nil
		}
		st.Entries++
		st.Bytes += info.Size()
		if t := info.ModTime(); st.Oldest.IsZero() || t.Before(st.Oldest) {
			st.Oldest = t
		}
		if t := info.ModTime(); t.After(st.Newest) {
			st.Newest = t
		}
		return nil
	})
	return st, err
}

// Prune removes the entries written before cutoff, and leftover temporary files older than an
// hour; it returns how many files it removed.
func (c *Cache) Prune(cutoff time.Time) (int, error) {
	n := 0
	err := c.walk(func(path string, info fs.FileInfo, temp bool) error {
		old := info.ModTime().Before(cutoff)
		if temp {
			old = time.Since(info.ModTime()) > time.Hour
		}
		if old {
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

func (c *Cache) walk(fn func(path string, info fs.FileInfo, temp bool) error) error {
	return filepath.WalkDir(c.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		name := d.Name()
		temp := strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp-")
		if !temp && !strings.HasSuffix(name, ".json") {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil // removed meanwhile
		}
		return fn(path, info, temp)
	})
}

// DefaultDir is where --cache auto keeps answers: the user's cache folder.
func DefaultDir() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("--cache auto: no user cache folder (%w); give --cache DIR", err)
	}
	return filepath.Join(base, "trialcat", "answers"), nil
}

// Resolve turns a --cache value into the cache's folder and makes sure the workers can use it:
// "auto" is DefaultDir, anything else a folder made absolute, so that workers (and tasks on other
// nodes) find the same one. A path that is a file, or a folder that cannot be written, is refused
// here, before a run writes anything; a folder that does not exist yet is created by Open.
func Resolve(v string) (string, error) {
	d := v
	if v == "auto" {
		var err error
		if d, err = DefaultDir(); err != nil {
			return "", err
		}
	}
	d, err := filepath.Abs(d)
	if err != nil {
		return "", fmt.Errorf("--cache %s: %w", v, err)
	}
	st, err := os.Stat(d)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return d, nil
	case err != nil:
		return "", fmt.Errorf("--cache %s: %w", v, err)
	case !st.IsDir():
		return "", fmt.Errorf("--cache %s is a file, not a folder: give a folder for the answers (it is created if missing), or auto", d)
	}
	f, err := os.CreateTemp(d, ".write-probe-*")
	if err != nil {
		return "", fmt.Errorf("--cache %s is not writable (%w); fix its permissions or choose another --cache", d, err)
	}
	f.Close()
	return d, os.Remove(f.Name())
}
