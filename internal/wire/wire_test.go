package wire

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	for _, m := range []Msg{
		{Type: Acquire, Seq: 7, Tokens: 1234},
		{Type: Feedback, Status: 429, RetryAfterMS: 1500, RemainingRequests: -1, RemainingTokens: 0, LimitTokens: 200000},
		{Type: Record, Worker: 3, ID: "NCT0001\r\n\"x\"", OK: true, Attempts: 2, Model: "gpt-5-mini", InputTokens: 900, CostUSD: 0.0012, LatencyMS: 4100,
			Cells: []string{"NCT0001\r\n\"x\"", "oncology", "line\nbreak"}},
		{Type: Grant, Seq: 7, Error: "too many permits pending for this worker"},
		{Type: End, Done: 5, MaxRSSKB: 21_000},
	} {
		line := Encode(m)
		if bytes.Count(line, []byte("\n")) != 1 || line[len(line)-1] != '\n' {
			t.Fatalf("Encode(%+v) = %q; want one line", m, line)
		}
		got, err := Decode(line[:len(line)-1])
		if err != nil || !reflect.DeepEqual(got, m) {
			t.Errorf("round trip of %+v gave %+v, %v", m, got, err)
		}
	}
}

func TestDecodeRefusesWhatIsNotProtocol(t *testing.T) {
	for _, line := range []string{"panic: runtime error", `{"type":"stop"}`, `{"seq":1}`, `[1,2]`} {
		if _, err := Decode([]byte(line)); !errors.Is(err, ErrUnknown) {
			t.Errorf("Decode(%q) = %v; want ErrUnknown", line, err)
		}
	}
}

func TestIsPermit(t *testing.T) {
	for typ, want := range map[string]bool{Acquire: true, Cancel: true, Reconcile: true, Feedback: true, Grant: true,
		Start: false, Record: false, Retry: false, Fatal: false, End: false} {
		if got := (Msg{Type: typ}).IsPermit(); got != want {
			t.Errorf("IsPermit(%s) = %v; want %v", typ, got, want)
		}
	}
}

func TestWriterKeepsLinesWhole(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			for range 100 {
				_ = w.Send(Msg{Type: Retry, Worker: i, ID: strings.Repeat("x", 500), Message: "boom"})
			}
		})
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 1600 {
		t.Fatalf("%d lines; want 1600", len(lines))
	}
	for _, l := range lines {
		if _, err := Decode([]byte(l)); err != nil {
			t.Fatalf("torn line %q: %v", l[:40], err)
		}
	}
	var nilW *Writer
	if err := nilW.Send(Msg{Type: End}); err != nil {
		t.Errorf("a nil Writer returned %v; want it to discard", err)
	}
}

// Posted lines wait to share a write with what follows; a Send writes them first, in order, and
// a posted line alone is written within PostDelay.
func TestPostedLinesShareAWrite(t *testing.T) {
	var mu sync.Mutex
	var writes []string
	w := NewWriter(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		writes = append(writes, string(p))
		return len(p), nil
	}))
	w.Post(Msg{Type: Record, ID: "a"})
	w.Post(Msg{Type: Record, ID: "b"})
	if err := w.Send(Msg{Type: Acquire, Seq: 1}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(writes) != 1 || strings.Count(writes[0], "\n") != 3 || strings.Index(writes[0], `"a"`) > strings.Index(writes[0], `"acquire"`) {
		t.Fatalf("writes %q: want the two posted lines and the sent one, in order, in one write", writes)
	}
	mu.Unlock()
	w.Post(Msg{Type: Record, ID: "c"})
	deadline := time.Now().Add(2 * time.Second)
	for {
		mu.Lock()
		n := len(writes)
		mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a posted line alone was never written")
		}
		time.Sleep(time.Millisecond)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
