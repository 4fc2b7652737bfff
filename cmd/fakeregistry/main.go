// Command fakeregistry serves a fake of the ClinicalTrials.gov API v2 over the studies of a JSON
// Lines file, for the demo and the docs' monthly recipe (internal/fakereg):
//
//	fakeregistry --records testdata/trials.jsonl --addr 127.0.0.1:8099
//	curl -X POST '127.0.0.1:8099/fake/new-month?edit=10&add=5&date=2026-12-01'
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/trialcat/trialcat/internal/fakereg"
)

func main() {
	records := flag.String("records", "", "JSON Lines `FILE` of ClinicalTrials.gov studies to serve")
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on")
	stamp := flag.String("data-timestamp", "2026-11-01T09:00:00", "the data timestamp /api/v2/version says")
	rate429 := flag.Float64("rate-429", 0, "share of page requests answered 429")
	rate500 := flag.Float64("rate-500", 0, "share of page requests answered 500")
	rateCut := flag.Float64("rate-cut", 0, "share of page requests cut off midway")
	flag.Parse()
	if *records == "" {
		fmt.Fprintln(os.Stderr, "fakeregistry: --records FILE is required")
		os.Exit(2)
	}
	data, err := os.ReadFile(*records)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fakeregistry:", err)
		os.Exit(2)
	}
	srv, err := fakereg.New(fakereg.Config{Seed: 1, Rate429: *rate429, Rate500: *rate500, RateCut: *rateCut, RetryAfter: 1}, data, *stamp)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fakeregistry:", err)
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fakeregistry:", err)
		os.Exit(2)
	}
	fmt.Printf("fakeregistry: serving %d studies on http://%s/api/v2\n", len(srv.IDs()), ln.Addr())
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}()
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "fakeregistry:", err)
		os.Exit(1)
	}
}
