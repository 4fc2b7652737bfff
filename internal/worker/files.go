package worker

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
)

// Files are the paths a worker reads and writes, all in the batch file's folder.
type Files struct {
	Dir      string
	Number   int
	Batch    string
	Results  string
	Failures string
	Log      string
	Attempts string
}

var batchName = regexp.MustCompile(`^batch_(\d+)\.json$`)

// FilesFor derives a worker's file names from its batch file's name, batch_N.json.
func FilesFor(batchPath string) (Files, error) {
	m := batchName.FindStringSubmatch(filepath.Base(batchPath))
	if m == nil {
		return Files{}, fmt.Errorf("batch file %q is not named batch_N.json; the worker's output names come from N", batchPath)
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		return Files{}, fmt.Errorf("batch file %q: %w", batchPath, err)
	}
	return FilesForNumber(filepath.Dir(batchPath), n), nil
}

// FilesForNumber names worker n's files in dir.
func FilesForNumber(dir string, n int) Files {
	p := func(format string) string { return filepath.Join(dir, fmt.Sprintf(format, n)) }
	return Files{
		Dir:      dir,
		Number:   n,
		Batch:    p("batch_%d.json"),
		Results:  p("worker_%d_results.csv"),
		Failures: p("worker_%d_failures.csv"),
		Log:      p("worker_%d_log.txt"),
		Attempts: p("worker_%d_attempts.log"),
	}
}

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
