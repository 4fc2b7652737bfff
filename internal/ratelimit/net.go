package ratelimit

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trialcat/trialcat/internal/safefile"
	"github.com/trialcat/trialcat/internal/wire"
)

// Endpoint is where a limit server listens and the token its clients must show: the run
// folder's limits.json, written with mode 0600 so only the run's owner can read the token.
type Endpoint struct {
	Address string    `json:"address"`
	Token   string    `json:"token"`
	PID     int       `json:"pid"`
	RPM     int       `json:"rpm,omitempty"`
	TPM     int       `json:"tpm,omitempty"`
	Started time.Time `json:"started"`
}

// NewToken returns a random token for an Endpoint.
func NewToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	return hex.EncodeToString(b)
}

// SaveEndpoint writes e to path atomically, readable by its owner only.
func SaveEndpoint(path string, e Endpoint) error {
	data, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return err
	}
	return safefile.Write(path, 0o600, func(w io.Writer) error {
		_, err := w.Write(append(data, '\n'))
		return err
	})
}

// LoadEndpoint reads path; a missing file is os.ErrNotExist.
func LoadEndpoint(path string) (Endpoint, error) {
	var e Endpoint
	data, err := os.ReadFile(path)
	if err != nil {
		return e, err
	}
	if err := json.Unmarshal(data, &e); err != nil || e.Address == "" || e.Token == "" {
		return e, fmt.Errorf("%s is not a limit server's address file", path)
	}
	return e, nil
}

// helloTimeout bounds the exchange that opens a connection.
const helloTimeout = 5 * time.Second

// Serve accepts permit connections on ln until ctx ends or ln is closed, and serves each with
// s: a client first proves it holds token (see wire.Hello; a wrong proof closes the connection),
// then sends the same permit lines as a worker's pipes. A client's connection ending forgets its
// pending acquires.
func (s *Server) Serve(ctx context.Context, ln net.Listener, token string, onConn func(remote string, ok bool)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	var ids atomic.Int64
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("limit server: accept: %w", err)
		}
		// Connection numbers are negative so they never meet the coordinator's own workers.
		id := int(-1 - ids.Add(1))
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok := s.serveConn(ctx, conn, id, token)
			if onConn != nil {
				onConn(conn.RemoteAddr().String(), ok)
			}
		}()
	}
}

func (s *Server) serveConn(ctx context.Context, conn net.Conn, id int, token string) bool {
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	br := bufio.NewReader(conn)
	_ = conn.SetDeadline(time.Now().Add(helloTimeout))
	hello, err := readHello(br)
	if err != nil || hello.Nonce == "" {
		return false
	}
	mine := NewToken()
	if _, err := conn.Write(wire.Encode(wire.Msg{Type: wire.Hello, Nonce: mine, Proof: proof(token, "server", hello.Nonce, mine)})); err != nil {
		return false
	}
	theirs, err := readHello(br)
	if err != nil || !hmac.Equal([]byte(theirs.Proof), []byte(proof(token, "worker", mine, hello.Nonce))) {
		return false
	}
	_ = conn.SetDeadline(time.Time{})
	s.Attach(ctx, id, conn)
	defer s.Forget(id)
	for {
		line, err := readLimited(br)
		if err != nil {
			return true
		}
		if m, err := wire.Decode(line); err == nil && m.IsPermit() {
			s.Handle(id, m)
		}
	}
}

// proof is what one side of a limit connection sends to show it holds the run's token: an
// HMAC-SHA256 of the side's name and both nonces, keyed with the token.
func proof(token, side, a, b string) string {
	mac := hmac.New(sha256.New, []byte(token))
	mac.Write([]byte(side + "\n" + a + "\n" + b))
	return hex.EncodeToString(mac.Sum(nil))
}

// readHello reads one hello line.
func readHello(br *bufio.Reader) (wire.Msg, error) {
	line, err := readLimited(br)
	if err != nil {
		return wire.Msg{}, err
	}
	m, err := wire.Decode(line)
	if err != nil || m.Type != wire.Hello {
		return wire.Msg{}, fmt.Errorf("answered %q, not hello", line)
	}
	return m, nil
}

// maxLine bounds one protocol line from a network client.
const maxLine = 64 << 10

func readLimited(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, isPrefix, err := br.ReadLine()
		if err != nil {
			return nil, err
		}
		line = append(line, chunk...)
		if len(line) > maxLine {
			return nil, fmt.Errorf("line over %d bytes", maxLine)
		}
		if !isPrefix {
			return line, nil
		}
	}
}

// Dial opens a permit connection to the limit server at e and returns a Client of it; closing
// the returned io.Closer ends the connection. It fails within timeout when the server cannot be
// reached or does not accept the token.
func Dial(ctx context.Context, e Endpoint, timeout time.Duration) (*Client, io.Closer, error) {
	d := net.Dialer{Timeout: timeout, KeepAlive: 15 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", e.Address)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to the limit server at %s: %w", e.Address, err)
	}
	_ = conn.SetDeadline(time.Now().Add(timeout))
	mine := NewToken()
	if _, err := conn.Write(wire.Encode(wire.Msg{Type: wire.Hello, Nonce: mine})); err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("limit server at %s: %w", e.Address, err)
	}
	br := bufio.NewReader(conn)
	m, err := readHello(br)
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("the limit server at %s did not answer as one (a stale limits file, or another program on its port): %w", e.Address, err)
	}
	if m.Nonce == "" || !hmac.Equal([]byte(m.Proof), []byte(proof(e.Token, "server", mine, m.Nonce))) {
		conn.Close()
		return nil, nil, fmt.Errorf("what answers at %s is not this run's limit server (it cannot prove it holds the run's token: a stale limits file?); this worker's token was not sent", e.Address)
	}
	if _, err := conn.Write(wire.Encode(wire.Msg{Type: wire.Hello, Proof: proof(e.Token, "worker", m.Nonce, mine)})); err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("limit server at %s: %w", e.Address, err)
	}
	_ = conn.SetDeadline(time.Time{})
	return NewClient(wire.NewWriter(conn), br), conn, nil
}

// Fallback takes permits from a limit server while it is there and from a local limiter (the
// task's share of the run's limit) once the server is gone. It implements Permits.
type Fallback struct {
	remote *Client
	local  Permits
	once   sync.Once
	onFall func(error)
}

// NewFallback returns permits from remote, then from local after remote's server has gone;
// onFall is told once, when that happens.
func NewFallback(remote *Client, local Permits, onFall func(error)) *Fallback {
	return &Fallback{remote: remote, local: local, onFall: onFall}
}

var _ Permits = (*Fallback)(nil)

func (f *Fallback) fell() bool {
	err := f.remote.Err()
	if err == nil {
		return false
	}
	f.once.Do(func() {
		if f.onFall != nil {
			f.onFall(err)
		}
	})
	return true
}

// Wait asks the server, or the local limiter once the server is gone.
func (f *Fallback) Wait(ctx context.Context, tokens int) error {
	if !f.fell() {
		err := f.remote.Wait(ctx, tokens)
		if err == nil || !errors.Is(err, ErrCoordinatorGone) {
			return err
		}
		f.fell()
	}
	return f.local.Wait(ctx, tokens)
}

// Reconcile goes where the permit came from (the server while it is there).
func (f *Fallback) Reconcile(estimated, actual int) {
	if f.fell() {
		f.local.Reconcile(estimated, actual)
		return
	}
	f.remote.Reconcile(estimated, actual)
}

// Feedback goes to both: a 429 or an outage slows this task's share too.
func (f *Fallback) Feedback(fb Feedback) {
	if !f.fell() {
		f.remote.Feedback(fb)
	}
	f.local.Feedback(fb)
}
