package results

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"os"
	"sync"
)

// Stream is results.jsonl: one JSON object per answered record, its final_results.csv columns
// as keys (the ID column first) and the row's cells as string values, appended the moment the
// coordinator learns of the answer, each ID at most once across resumes and restarts. Lines
// come in the order answers arrive, not in input order. A copy of every line may go to another
// writer (stdout, for --stream -).
type Stream struct {
	mu     sync.Mutex
	layout Layout
	f      *os.File
	w      *bufio.Writer
	tee    io.Writer
	onTee  func(error)
	// seen holds a 64-bit hash of each ID streamed, not the ID: a million records cost 20 MB,
	// not 60 (two IDs share a hash with odds of about 1 in 30 million at that size; the
	// second would then be missing from the stream, never from the final files).
	seen map[uint64]struct{}
	seed maphash.Seed
	err  error
}

// OpenStream opens (or creates) the stream file at path, reads the IDs it holds already (a torn
// last line, from a kill mid-write, is cut off), and appends from there. tee, when not nil,
// gets a copy of each new line until a write to it fails (a reader that went away: `| head`);
// onTee, when set, is told of that failure once. The file goes on either way.
func OpenStream(path string, layout Layout, tee io.Writer, onTee func(error)) (*Stream, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	s := &Stream{layout: layout, f: f, tee: tee, onTee: onTee, seen: map[uint64]struct{}{}, seed: maphash.MakeSeed()}
	end, err := s.scan()
	if err == nil {
		err = f.Truncate(end)
	}
	if err == nil {
		_, err = f.Seek(end, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s.w = bufio.NewWriter(f)
	return s, nil
}

// scan reads the IDs of the whole lines and returns where the last whole line ends.
func (s *Stream) scan() (int64, error) {
	r := bufio.NewReader(s.f)
	var end int64
	for {
		line, err := r.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			return end, nil // a last line without its newline is torn
		}
		if err != nil {
			return end, err
		}
		end += int64(len(line))
		if id, ok := s.idOf(line); ok {
			s.seen[maphash.String(s.seed, id)] = struct{}{}
		}
	}
}

// idOf reads the value of the ID column of a line.
func (s *Stream) idOf(line []byte) (string, bool) {
	var m map[string]string
	if err := json.Unmarshal(bytes.TrimSpace(line), &m); err != nil {
		return "", false
	}
	id, ok := m[s.layout.IDColumn]
	return id, ok
}

// Add appends the row of an answered record unless its ID is in the stream already, and
// flushes it. cells are the row as Encode returns it.
func (s *Stream) Add(cells []string) error {
	if len(cells) == 0 {
		return nil
	}
	header := s.layout.Header()
	if len(cells) != len(header) {
		return fmt.Errorf("results stream: a row of %d cells for %d columns", len(cells), len(header))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	key := maphash.String(s.seed, cells[0])
	if _, dup := s.seen[key]; dup || s.err != nil {
		return s.err
	}
	line := encodeLine(header, cells)
	if _, err := s.w.Write(line); err != nil {
		s.err = err
		return err
	}
	if err := s.w.Flush(); err != nil {
		s.err = err
		return err
	}
	s.seen[key] = struct{}{}
	if s.tee != nil {
		if _, err := s.tee.Write(line); err != nil {
			s.tee = nil
			if s.onTee != nil {
				s.onTee(err)
			}
		}
	}
	return nil
}

// Len is the number of IDs in the stream.
func (s *Stream) Len() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int64(len(s.seen))
}

// encodeLine writes a JSON object with the keys in header order.
func encodeLine(header, cells []string) []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range header {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		vb, _ := json.Marshal(cells[i])
		b.Write(kb)
		b.WriteByte(':')
		b.Write(vb)
	}
	b.WriteString("}\n")
	return b.Bytes()
}

// Close flushes and closes the file.
func (s *Stream) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.w.Flush()
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	return err
}
