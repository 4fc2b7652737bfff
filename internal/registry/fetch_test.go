package registry

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trialcat/trialcat/internal/fakereg"
)

const sample = "../../testdata/trials.jsonl"

func startRegistry(t *testing.T, cfg fakereg.Config) (*fakereg.Server, *Client) {
	t.Helper()
	data, err := os.ReadFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := fakereg.New(cfg, data, "2026-11-01T09:00:00")
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	c := New(Config{BaseURL: hs.URL + "/api/v2", RPM: -1, UserAgent: "trialcat-test",
		Sleep: func(ctx context.Context, d time.Duration) error { return ctx.Err() }})
	return srv, c
}

// lines reads a JSON Lines file.
func lines(t *testing.T, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		out = append(out, append([]byte(nil), sc.Bytes()...))
	}
	return out
}

// Against 429s, 500s and cut pages every study is written once, byte for byte what the server
// holds, in the server's order.
func TestFetchThroughFaults(t *testing.T) {
	srv, c := startRegistry(t, fakereg.Config{Seed: 3, Rate429: 0.15, Rate500: 0.1, RateCut: 0.1, RetryAfter: 1})
	out := filepath.Join(t.TempDir(), "studies.jsonl")
	cp, err := Fetch(context.Background(), c, FetchOptions{Out: out, Query: Query{PageSize: 7}})
	if err != nil {
		t.Fatal(err)
	}
	if !cp.Done || cp.Studies != 100 || cp.Total != 100 || cp.DataTimestamp == "" {
		t.Errorf("checkpoint %+v", cp)
	}
	got := lines(t, out)
	ids := srv.IDs()
	if len(got) != len(ids) {
		t.Fatalf("%d studies written, the server holds %d", len(got), len(ids))
	}
	seen := map[string]bool{}
	for i, l := range got {
		id := StudyID(l)
		if seen[id] || !bytes.Equal(l, srv.Study(id)) {
			t.Fatalf("line %d (%s) is written twice or differs from the server's study", i, id)
		}
		seen[id] = true
	}
	st := srv.Stats()
	if st.Faults["429"] == 0 || st.Faults["500"] == 0 || st.Faults["cut"] == 0 {
		t.Errorf("faults %v: the test proves nothing about some", st.Faults)
	}
	if _, err := os.Stat(partialPath(out)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the partial file is left: %v", err)
	}
	// Asked again, a whole fetch does nothing.
	before := srv.Stats().Requests
	if _, err := Fetch(context.Background(), c, FetchOptions{Out: out, Query: Query{PageSize: 7}}); err != nil {
		t.Fatal(err)
	}
	if srv.Stats().Requests != before {
		t.Error("a whole fetch asked the registry again")
	}
	// Another query over the same output is refused.
	if _, err := Fetch(context.Background(), c, FetchOptions{Out: out, Query: Query{PageSize: 7, Cond: "asthma"}}); !errors.Is(err, ErrOtherFetch) {
		t.Errorf("another query over a fetched file: %v", err)
	}
}

// A fetch stopped mid-page (a kill between the page's write and its checkpoint, leaving a torn
// line) goes on from the last checkpoint: the page in flight is fetched again, nothing else, and
// no study is written twice.
func TestFetchResumesAfterAKill(t *testing.T) {
	srv, c := startRegistry(t, fakereg.Config{})
	out := filepath.Join(t.TempDir(), "studies.jsonl")
	ctx, cancel := context.WithCancel(context.Background())
	pages := 0
	_, err := Fetch(ctx, c, FetchOptions{Out: out, Query: Query{PageSize: 10}, Progress: func(n, total int64) {
		if pages++; pages == 3 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("stopped fetch: %v", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("the output is in place before the fetch is whole")
	}
	first := map[string]bool{}
	for _, l := range lines(t, partialPath(out)) {
		first[StudyID(l)] = true
	}
	if len(first) != 30 {
		t.Fatalf("%d studies written before the stop, want 3 pages of 10", len(first))
	}
	// As a kill would leave it: part of a page written after the checkpoint.
	f, _ := os.OpenFile(partialPath(out), os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte("{\"protocolSection\":{\"identificationModule\":{\"nctId\":\"NCT_TORN\"}}}\n{\"protocolSection\":{\"identifi"))
	f.Close()
	srv.ResetStats()
	cp, err := Fetch(context.Background(), c, FetchOptions{Out: out, Query: Query{PageSize: 10}})
	if err != nil || !cp.Done {
		t.Fatalf("resumed fetch: %+v %v", cp, err)
	}
	served := srv.Stats().Served
	for _, id := range srv.IDs() {
		if want := map[bool]int{true: 0, false: 1}[first[id]]; served[id] != want {
			t.Errorf("%s fetched %d times on resume, want %d", id, served[id], want)
		}
	}
	got := lines(t, out)
	seen := map[string]bool{}
	for _, l := range got {
		id := StudyID(l)
		if seen[id] {
			t.Errorf("%s written twice", id)
		}
		seen[id] = true
	}
	if seen["NCT_TORN"] {
		t.Error("the torn page's study survived the resume")
	}
	if len(got) != 100 {
		t.Errorf("%d studies, want 100", len(got))
	}
}

func TestQueryValues(t *testing.T) {
	v := Query{Term: "insulin", Cond: "diabetes", Status: []string{"RECRUITING", "COMPLETED"}, Since: "2026-11-01", Fields: []string{"NCTId"}}.Values()
	for k, want := range map[string]string{"query.term": "insulin", "query.cond": "diabetes", "filter.overallStatus": "RECRUITING,COMPLETED",
		"filter.advanced": "AREA[LastUpdatePostDate]RANGE[2026-11-01,MAX]", "fields": "NCTId", "pageSize": "1000"} {
		if got := v.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if err := (Query{Since: "last month"}).Check(); err == nil {
		t.Error("a since that is not a date passed")
	}
}

// A registry that lies about its paging (a token that repeats, pages that never end) stops the
// fetch with a clear error instead of paging forever; the studies so far are kept for a rerun.
func TestFetchFromALyingRegistry(t *testing.T) {
	for name, handler := range map[string]http.HandlerFunc{
		"same token forever": func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/version") {
				fmt.Fprint(w, `{"apiVersion":"x","dataTimestamp":"2026-11-01T09:00:00"}`)
				return
			}
			fmt.Fprint(w, `{"studies":[{"protocolSection":{"identificationModule":{"nctId":"NCT1"}}}],"nextPageToken":"again"}`)
		},
		"endless empty pages": func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/version") {
				fmt.Fprint(w, `{"apiVersion":"x","dataTimestamp":"2026-11-01T09:00:00"}`)
				return
			}
			fmt.Fprintf(w, `{"studies":[],"nextPageToken":"t%d"}`, time.Now().UnixNano())
		},
	} {
		t.Run(name, func(t *testing.T) {
			hs := httptest.NewServer(handler)
			defer hs.Close()
			c := New(Config{BaseURL: hs.URL + "/api/v2", RPM: -1, Sleep: func(ctx context.Context, d time.Duration) error { return ctx.Err() }})
			done := make(chan error, 1)
			go func() {
				_, err := Fetch(context.Background(), c, FetchOptions{Out: filepath.Join(t.TempDir(), "s.jsonl"), Query: Query{PageSize: 10}})
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, ErrLyingRegistry) {
					t.Errorf("err = %v, want ErrLyingRegistry", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("the fetch pages forever")
			}
		})
	}
}

// Two fetches into one file at once: the second is refused while the first runs, and the first
// completes.
func TestFetchTwiceAtOnce(t *testing.T) {
	data, _ := os.ReadFile(sample)
	srv, err := fakereg.New(fakereg.Config{PageDelay: 100 * time.Millisecond}, data, "2026-11-01T09:00:00")
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	c := New(Config{BaseURL: hs.URL + "/api/v2", RPM: -1})
	out := filepath.Join(t.TempDir(), "s.jsonl")
	first := make(chan error, 1)
	started := make(chan struct{})
	var once sync.Once
	go func() {
		_, err := Fetch(context.Background(), c, FetchOptions{Out: out, Query: Query{PageSize: 10}, Progress: func(int64, int64) {
			once.Do(func() { close(started) })
		}})
		first <- err
	}()
	<-started
	if _, err := Fetch(context.Background(), c, FetchOptions{Out: out, Query: Query{PageSize: 10}}); !errors.Is(err, ErrBusy) {
		t.Errorf("a second fetch at once: %v, want ErrBusy", err)
	}
	if err := <-first; err != nil {
		t.Errorf("the first fetch: %v", err)
	}
	if got := len(lines(t, out)); got != 100 {
		t.Errorf("%d studies", got)
	}
}
