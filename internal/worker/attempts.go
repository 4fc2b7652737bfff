package worker

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
)

// attemptLog is the append-only journal of attempts: one line per attempt, the record ID as a JSON
// string (so no byte of an ID can break a line), written before the request is sent, so
// attempts survive worker restarts.
type attemptLog struct {
	mu sync.Mutex
	f  *os.File
}

// openAttemptLog opens the journal for appending and returns the attempts already spent per ID.
// A torn last line (the process died mid-write, before the request was sent) is not counted.
func openAttemptLog(path string) (*attemptLog, map[string]int, error) {
	counts := map[string]int{}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("open attempts log: %w", err)
	}
	r := bufio.NewReader(f)
	var size int64
	for {
		line, err := r.ReadString('\n')
		if errors.Is(err, io.EOF) {
			break // a line without '\n' is torn: drop it below
		}
		if err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("read attempts log: %w", err)
		}
		size += int64(len(line))
		if id, ok := decodeAttempt(line[:len(line)-1]); ok {
			counts[id]++
		}
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("truncate attempts log: %w", err)
	}
	if _, err := f.Seek(size, io.SeekStart); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("seek attempts log: %w", err)
	}
	return &attemptLog{f: f}, counts, nil
}

// Record notes one attempt for id.
func (a *attemptLog) Record(id string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, err := a.f.Write(encodeAttempt(id)); err != nil {
		return fmt.Errorf("write attempts log: %w", err)
	}
	return nil
}

func (a *attemptLog) Close() error { return a.f.Close() }

// encodeAttempt is the journal line of one attempt of id.
func encodeAttempt(id string) []byte {
	b, _ := json.Marshal(id) // a string always marshals
	return append(b, '\n')
}

// decodeAttempt reads a journal line (without its newline). A line that is not a JSON string
// is a raw ID, as journals written before IDs were encoded hold.
func decodeAttempt(line string) (string, bool) {
	if !strings.HasPrefix(line, `"`) {
		return line, line != ""
	}
	var id string
	if json.Unmarshal([]byte(line), &id) != nil || id == "" {
		return "", false
	}
	return id, true
}
