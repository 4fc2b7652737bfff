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
	"strconv"
	"strings"
	"sync"
	"time"
)

// Stream is results.jsonl: one JSON object per answered record, its final_results.csv columns
// as keys (the ID column first) and the row's cells as values (see Layout.jsonKinds: the
// schema's cells strings, the counts, costs and confidences numbers), appended the moment the
// coordinator learns of the answer, each ID at most once across resumes and restarts. Lines
// come in the order answers arrive, not in input order. A copy of every line may go to another
// writer (stdout, for --stream -).
type Stream struct {
	mu     sync.Mutex
	layout Layout
	header []string
	kinds  []jsonKind
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
	// armed says a flush of the buffered lines is scheduled; closed that the file is.
	armed, closed bool
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
	s := &Stream{layout: layout, header: layout.Header(), kinds: layout.jsonKinds(), f: f, tee: tee, onTee: onTee,
		seen: map[uint64]struct{}{}, seed: maphash.MakeSeed()}
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
	var m map[string]json.RawMessage
	if err := json.Unmarshal(bytes.TrimSpace(line), &m); err != nil {
		return "", false
	}
	var id string
	if err := json.Unmarshal(m[s.layout.IDColumn], &id); err != nil {
		return "", false
	}
	return id, true
}

// Add appends the row of an answered record unless its ID is in the stream already; the line is
// written within StreamFlushDelay (at once on Close). cells are the row as Encode returns it.
func (s *Stream) Add(cells []string) error {
	if len(cells) == 0 {
		return nil
	}
	if len(cells) != len(s.header) {
		return fmt.Errorf("results stream: a row of %d cells for %d columns", len(cells), len(s.header))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	key := maphash.String(s.seed, cells[0])
	if _, dup := s.seen[key]; dup || s.err != nil {
		return s.err
	}
	line := encodeLine(s.header, s.kinds, cells)
	if _, err := s.w.Write(line); err != nil {
		s.err = err
		return err
	}
	// Lines reach the file within StreamFlushDelay, many to a write: a coordinator killed
	// meanwhile loses them from the stream only (the next pass adds them from the worker files).
	if !s.armed {
		s.armed = true
		time.AfterFunc(StreamFlushDelay, s.timedFlush)
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

// StreamFlushDelay bounds how long an added line waits in memory before it is written.
const StreamFlushDelay = 20 * time.Millisecond

func (s *Stream) timedFlush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.armed = false
	if s.err == nil && !s.closed {
		if err := s.w.Flush(); err != nil {
			s.err = err
		}
	}
}

// Len is the number of IDs in the stream.
func (s *Stream) Len() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int64(len(s.seen))
}

// jsonKind is how a column's cells are spelled in results.jsonl.
type jsonKind uint8

const (
	kindString jsonKind = iota
	kindNumber          // a JSON number; an empty cell (a cost not known) is null
	kindBool
)

// jsonKinds is the kind of each column of the header: the schema's cells are strings (as in the
// CSV), the confidences and the numeric bookkeeping columns numbers, cached a boolean.
func (l Layout) jsonKinds() []jsonKind {
	kinds := make([]jsonKind, 0, 1+len(l.Columns)+nBook)
	kinds = append(kinds, kindString)
	for _, c := range l.Columns {
		k := kindString
		if strings.HasSuffix(c, confidenceSuffix) {
			k = kindNumber
		}
		kinds = append(kinds, k)
	}
	for _, c := range Bookkeeping() {
		k := kindString
		switch c {
		case ColInputTokens, ColOutputTokens, ColCostUSD, ColAttempts, ColLatencyMS, ColWorker, ColCachedTokens, ColTurns:
			k = kindNumber
		case ColCached:
			k = kindBool
		}
		kinds = append(kinds, k)
	}
	return kinds
}

// encodeLine writes a JSON object with the keys in header order, each cell spelled as its kind
// says (a cell that is not of its kind, which Encode never writes, stays a string).
func encodeLine(header []string, kinds []jsonKind, cells []string) []byte {
	b := make([]byte, 0, 64*len(cells))
	b = append(b, '{')
	for i, k := range header {
		if i > 0 {
			b = append(b, ',')
		}
		kb, _ := json.Marshal(k)
		b = append(b, kb...)
		b = append(b, ':')
		b = appendCell(b, kinds[i], cells[i])
	}
	return append(b, "}\n"...)
}

// isJSONNumber reports whether s is spelled as a JSON number ("12", "-0.5", "1e3"; not "0x1F",
// "+1", "Inf" or "NaN").
func isJSONNumber(s string) bool {
	i := 0
	digits := func() int {
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i, n = i+1, n+1
		}
		return n
	}
	if i < len(s) && s[i] == '-' {
		i++
	}
	start := i
	if n := digits(); n == 0 || (n > 1 && s[start] == '0') {
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}

func appendCell(b []byte, kind jsonKind, cell string) []byte {
	switch kind {
	case kindNumber:
		if cell == "" {
			return append(b, "null"...)
		}
		if isJSONNumber(cell) {
			return append(b, cell...)
		}
	case kindBool:
		if v, err := strconv.ParseBool(cell); err == nil {
			return strconv.AppendBool(b, v)
		}
	}
	vb, _ := json.Marshal(cell)
	return append(b, vb...)
}

// Close flushes and closes the file.
func (s *Stream) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.w.Flush()
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	return err
}
