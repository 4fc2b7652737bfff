package results

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/trialcat/trialcat/internal/safefile"
)

// AttemptLog is the append-only journal of a worker's attempts (worker_N_attempts.log): one line
// per attempt, the record ID as a JSON string (so no byte of an ID can break a line), written
// before the request is sent, so attempts survive worker restarts and a crash counts as an
// attempt of every record in flight. An attempt abandoned because the run was stopped (not a
// crash) is given back with a refund line: the ID's JSON string after a "-".
type AttemptLog struct {
	mu sync.Mutex
	f  *os.File
}

// OpenAttemptLog opens the journal for appending and returns the attempts already spent per ID.
// A torn last line (the process died mid-write, before the request was sent) is not counted.
func OpenAttemptLog(path string) (*AttemptLog, map[string]int, error) {
	counts := map[string]int{}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
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
		if id, n, ok := decodeAttempt(line[:len(line)-1]); ok {
			counts[id] += n
			if counts[id] <= 0 {
				delete(counts, id)
			}
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
	return &AttemptLog{f: f}, counts, nil
}

// Record notes one attempt for id.
func (a *AttemptLog) Record(id string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, err := a.f.Write(encodeAttempt(id)); err != nil {
		return fmt.Errorf("write attempts log: %w", err)
	}
	return nil
}

// Refund gives back an attempt of id that was abandoned because the run stopped: it was not
// the record's fault.
func (a *AttemptLog) Refund(id string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, err := a.f.Write(append([]byte("-"), encodeAttempt(id)...)); err != nil {
		return fmt.Errorf("write attempts log: %w", err)
	}
	return nil
}

// Close closes the journal.
func (a *AttemptLog) Close() error { return a.f.Close() }

// FilterAttempts rewrites the journal at path (atomically) keeping the lines of the IDs keep
// accepts: a rerun gives failed records a fresh set of attempts and keeps the counts of records
// that never ended. A missing journal is left missing.
func FilterAttempts(path string, keep func(id string) bool) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read attempts log: %w", err)
	}
	var out bytes.Buffer
	for _, line := range strings.SplitAfter(string(data), "\n") {
		if !strings.HasSuffix(line, "\n") {
			break // torn: not an attempt
		}
		if id, _, ok := decodeAttempt(line[:len(line)-1]); ok && keep(id) {
			out.WriteString(line)
		}
	}
	return safefile.Write(path, 0o644, func(w io.Writer) error {
		_, err := w.Write(out.Bytes())
		return err
	})
}

// encodeAttempt is the journal line of one attempt of id.
func encodeAttempt(id string) []byte {
	b, _ := json.Marshal(id) // a string always marshals
	return append(b, '\n')
}

// decodeAttempt reads a journal line (without its newline): the ID and +1 for an attempt, -1 for
// a refund. A line that is not a JSON string is a raw ID, as journals written before IDs were
// encoded hold.
func decodeAttempt(line string) (id string, n int, ok bool) {
	n = 1
	if strings.HasPrefix(line, `-"`) {
		line, n = line[1:], -1
	}
	if !strings.HasPrefix(line, `"`) {
		return line, n, line != ""
	}
	if json.Unmarshal([]byte(line), &id) != nil || id == "" {
		return "", 0, false
	}
	return id, n, true
}
