package results

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
)

// Carried is a line of a run's carried.jsonl (--since-run): an earlier run's answer to a record
// and the content hash of the record it answered. A worker takes it instead of asking when its
// record hashes the same.
type Carried struct {
	ID     string   `json:"id"`
	SHA256 string   `json:"sha256"`
	Values []string `json:"values"`
	Model  string   `json:"model"`
}

// WriteCarried writes one line.
func WriteCarried(w io.Writer, c Carried) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// ReadCarried streams a carried.jsonl file; keep says which IDs to hand to fn (nil: all).
func ReadCarried(path string, keep func(id string) bool, fn func(Carried) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	n := 0
	for sc.Scan() {
		n++
		var c Carried
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			return fmt.Errorf("%s line %d: %w", path, n, err)
		}
		if keep == nil || keep(c.ID) {
			if err := fn(c); err != nil {
				return err
			}
		}
	}
	return sc.Err()
}
