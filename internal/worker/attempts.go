package worker

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// attemptLog is the append-only journal of attempts: one line with the record ID per attempt,
// written and flushed before the request is sent, so attempts survive worker restarts.
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
		if id := line[:len(line)-1]; id != "" {
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
	if _, err := a.f.WriteString(id + "\n"); err != nil {
		return fmt.Errorf("write attempts log: %w", err)
	}
	return nil
}

func (a *attemptLog) Close() error { return a.f.Close() }
