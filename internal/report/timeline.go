package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// span is one worker process's run through its batch, from "batch started" to "batch finished",
// or to its last log line when it never finished (crashed, killed or still running).
type span struct {
	Start, End time.Time
	Finished   bool
	// Answered and Failed come from the "batch finished" line.
	Answered, Failed int64
	// Requests and Errors count the attempts logged during the span.
	Requests, Errors int64
}

// tick is one failed attempt.
type tick struct {
	At          int64 // Unix nanoseconds
	RateLimited bool
}

// workerLog is what one worker_N_log.txt tells.
type workerLog struct {
	N            int
	Spans        []span
	Ticks        []tick
	TicksDropped int64 // failed attempts not kept because of maxFailedTicks
	Errors       int64 // failed attempts in the whole file
	Classes      *counter
	BadLines     int64
}

// logLine is the part of a zerolog line the timeline reads.
type logLine struct {
	Message  string   `json:"message"`
	Status   string   `json:"status"`
	Class    string   `json:"class"`
	Answered int64    `json:"answered"`
	Failed   int64    `json:"failed"`
	Seconds  *float64 `json:"seconds"`
}

// readLogs reads every worker_N_log.txt of the folder, in worker order.
func (r *run) readLogs() error {
	nums, err := r.dir.Logs()
	if err != nil {
		return fmt.Errorf("report %s: %w", r.dir.Path(), err)
	}
	type numbered struct {
		n    int
		path string
	}
	var files []numbered
	for _, n := range nums {
		files = append(files, numbered{n, r.dir.Worker(n).Log})
	}
	budget := int64(maxFailedTicks)
	for _, f := range files {
		wl, err := readLog(f.path, f.n, &budget)
		if err != nil {
			r.notef("cannot read %s: %v", filepath.Base(f.path), err)
		}
		if wl != nil {
			r.logs = append(r.logs, wl)
		}
	}
	var dropped, bad int64
	for _, wl := range r.logs {
		dropped += wl.TicksDropped
		bad += wl.BadLines
	}
	if dropped > 0 {
		r.notef("the timeline shows the first %d failed attempts; %d more are counted but not drawn.", maxFailedTicks, dropped)
	}
	if bad > 0 {
		r.notef("%s of the worker logs are not JSON log lines (a panic or a torn last line); they were skipped.", plural(bad, "line"))
	}
	return nil
}

// readLog reads one worker log; budget is the number of failed-attempt ticks still to keep.
func readLog(path string, n int, budget *int64) (*workerLog, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	wl := &workerLog{N: n, Classes: newCounter(100)}
	var open *span
	var last time.Time // time of the last line read
	closeOpen := func() {
		if open == nil {
			return
		}
		if last.After(open.End) {
			open.End = last
		}
		wl.addSpan(*open)
		open = nil
	}
	br := bufio.NewReaderSize(f, 64<<10)
	for {
		line, err := readLine(br)
		if len(line) > 0 {
			t, ok := lineTime(line)
			if !ok {
				wl.BadLines++
			} else {
				wl.handle(line, t, &open, &last, closeOpen, budget)
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			closeOpen()
			return wl, err
		}
	}
	closeOpen()
	return wl, nil
}

// handle applies one log line at time t.
func (wl *workerLog) handle(line []byte, t time.Time, open **span, last *time.Time, closeOpen func(), budget *int64) {
	// Zerolog writes compact JSON with the message last, so most lines (successful requests) are
	// recognised without decoding them. Other JSON writers' spacing is decoded in full.
	var l logLine
	decode := false
	switch {
	case bytes.Contains(line, []byte(`"message":"request"`)):
		l.Message = "request"
		decode = bytes.Contains(line, []byte(`"status":"error"`))
	case bytes.Contains(line, []byte(`"batch started"`)), bytes.Contains(line, []byte(`"batch finished"`)),
		bytes.Contains(line, []byte(`"request"`)):
		decode = true
	}
	if decode {
		if err := json.Unmarshal(line, &l); err != nil {
			wl.BadLines++
			return
		}
	}
	switch l.Message {
	case "batch started":
		closeOpen()
		*open = &span{Start: t, End: t}
	case "batch finished":
		s := *open
		if s == nil { // the start line is missing: place the run by its duration
			s = &span{Start: t, End: t}
			if l.Seconds != nil {
				s.Start = t.Add(-time.Duration(*l.Seconds * float64(time.Second)))
			}
		}
		s.Finished, s.Answered, s.Failed = true, l.Answered, l.Failed
		s.End = t
		if l.Seconds != nil {
			// Log times may be whole seconds; the duration is exact.
			if e := s.Start.Add(time.Duration(*l.Seconds * float64(time.Second))); e.After(s.End) {
				s.End = e
			}
		}
		if last.After(s.End) {
			s.End = *last
		}
		wl.addSpan(*s)
		*open = nil
	case "request":
		if *open != nil {
			(*open).Requests++
		}
		if l.Status == "error" {
			wl.Errors++
			wl.Classes.add(l.Class)
			if *open != nil {
				(*open).Errors++
			}
			if *budget > 0 {
				*budget--
				wl.Ticks = append(wl.Ticks, tick{At: t.UnixNano(), RateLimited: l.Class == "rate_limited"})
			} else {
				wl.TicksDropped++
			}
		}
	}
	if t.After(*last) {
		*last = t
	}
	if *open != nil && t.After((*open).End) {
		(*open).End = t
	}
}

func (wl *workerLog) addSpan(s span) {
	if len(wl.Spans) < maxSpansPerWorker {
		wl.Spans = append(wl.Spans, s)
	}
}

// maxLine is the longest log line read whole; longer lines are skipped.
const maxLine = 1 << 20

// readLine returns the next line without its newline. A line longer than maxLine is returned
// empty. The error is io.EOF after the last line.
func readLine(br *bufio.Reader) ([]byte, error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(buf)+len(chunk) <= maxLine {
			buf = append(buf, chunk...)
		} else {
			// Skip the rest of an overlong line.
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			if err == nil {
				return nil, nil
			}
			return nil, err
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return bytes.TrimRight(buf, "\r\n"), err
	}
}

// lineTime returns the "time" field of a zerolog JSON line: an RFC 3339 string or a Unix time
// number (seconds, milliseconds, microseconds or nanoseconds, judged by size).
func lineTime(line []byte) (time.Time, bool) {
	if len(line) == 0 || line[0] != '{' {
		return time.Time{}, false
	}
	key := []byte(`"time":`)
	i := bytes.Index(line, key)
	if i < 0 {
		return time.Time{}, false
	}
	v := bytes.TrimLeft(line[i+len(key):], " ")
	if len(v) > 0 && v[0] == '"' {
		end := bytes.IndexByte(v[1:], '"')
		if end < 0 {
			return time.Time{}, false
		}
		t, err := time.Parse(time.RFC3339Nano, string(v[1:1+end]))
		return t, err == nil
	}
	end := bytes.IndexAny(v, ",}")
	if end < 0 {
		return time.Time{}, false
	}
	x, err := strconv.ParseFloat(string(bytes.TrimSpace(v[:end])), 64)
	if err != nil || x <= 0 {
		return time.Time{}, false
	}
	switch {
	case x < 1e11:
		return time.Unix(0, int64(x*1e9)), true
	case x < 1e14:
		return time.UnixMilli(int64(x)), true
	case x < 1e17:
		return time.UnixMicro(int64(x)), true
	default:
		return time.Unix(0, int64(math.Min(x, math.MaxInt64))), true
	}
}
