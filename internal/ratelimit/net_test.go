package ratelimit

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// serveTCP runs a limit server for l on a local port and returns its endpoint and a stop.
func serveTCP(t *testing.T, l *Limiter) (Endpoint, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(l)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var refused atomic.Int32
	go func() {
		defer close(done)
		_ = srv.Serve(ctx, ln, "right-token", func(_ string, ok bool) {
			if !ok {
				refused.Add(1)
			}
		})
	}()
	stop := func() {
		cancel()
		<-done
		srv.Close()
	}
	t.Cleanup(stop)
	return Endpoint{Address: ln.Addr().String(), Token: "right-token"}, stop
}

func TestLimitServerOverTCP(t *testing.T) {
	l := New(Config{RPM: 600})
	ep, _ := serveTCP(t, l)
	c, conn, err := Dial(t.Context(), ep, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for range 3 {
		if err := c.Wait(t.Context(), 1); err != nil {
			t.Fatalf("Wait over TCP: %v", err)
		}
	}
	if got := l.State().Granted; got != 3 {
		t.Errorf("the server's limiter granted %d; want the client's 3", got)
	}
}

func TestLimitServerRefusesAWrongToken(t *testing.T) {
	ep, _ := serveTCP(t, New(Config{RPM: 600}))
	ep.Token = "wrong"
	if _, _, err := Dial(t.Context(), ep, 2*time.Second); err == nil {
		t.Fatal("a client with the wrong token was accepted")
	}
	// Nor is a connection that sends nothing let in: it is closed after the hello timeout, and
	// a connection that sends garbage at once.
	conn, err := net.Dial("tcp", ep.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte(`{"type":"acquire","seq":1,"tokens":1}` + "\n"))
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 64)
	if n, err := conn.Read(buf); err == nil {
		t.Errorf("an acquire without hello was answered: %q", buf[:n])
	}
}

func TestFallbackTakesTheShareWhenTheServerGoes(t *testing.T) {
	ep, stop := serveTCP(t, New(Config{RPM: 600}))
	c, conn, err := Dial(t.Context(), ep, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	local := New(Config{RPM: 60})
	var fell atomic.Int32
	f := NewFallback(c, local, func(error) { fell.Add(1) })
	if err := f.Wait(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	if local.State().Granted != 0 {
		t.Fatal("the local share granted while the server was there")
	}
	stop()
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the client did not notice the server had gone")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := f.Wait(ctx, 1); err != nil {
		t.Fatalf("Wait after the server went: %v; want a permit from the share", err)
	}
	if local.State().Granted != 1 || fell.Load() != 1 {
		t.Errorf("local granted %d, told %d times; want 1 and 1", local.State().Granted, fell.Load())
	}
}

func TestEndpointFileIsPrivate(t *testing.T) {
	p := filepath.Join(t.TempDir(), "limits.json")
	if err := SaveEndpoint(p, Endpoint{Address: "h:1", Token: "t"}); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("limits.json mode %v; want 0600 (it holds the token)", st.Mode().Perm())
	}
	if e, err := LoadEndpoint(p); err != nil || e.Token != "t" {
		t.Errorf("LoadEndpoint = %+v, %v", e, err)
	}
}

// Whatever listens on a stale limits file's port is not trusted with the run's token: the worker
// sends it nothing but a nonce, and stops at a hello that proves nothing.
func TestDialNeverSendsTheTokenToAnImpostor(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			got <- ""
			return
		}
		defer conn.Close()
		// Answer hello as an old server would, without a proof, and note all that was sent.
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 4096)
		n, _ := conn.Read(buf)
		conn.Write([]byte(`{"type":"hello","nonce":"n"}` + "\n"))
		m, _ := conn.Read(buf[n:])
		got <- string(buf[:n+max(m, 0)])
	}()
	_, _, err = Dial(t.Context(), Endpoint{Address: ln.Addr().String(), Token: "secret-run-token"}, 2*time.Second)
	if err == nil || !strings.Contains(err.Error(), "not this run's limit server") {
		t.Fatalf("Dial to an impostor: %v", err)
	}
	if sent := <-got; strings.Contains(sent, "secret-run-token") {
		t.Fatalf("the worker sent the token to an impostor: %q", sent)
	}
}
