// Package toolserver runs a Model Context Protocol server over stdio as a child of the worker and
// offers its tools to the agent: started with an argv slice and an explicit environment (never
// the API key), in its own process group with Pdeathsig, its stderr re-logged line by line,
// initialized and listed through the official Go SDK (github.com/modelcontextprotocol/go-sdk),
// each call bounded by a timeout, and stopped with the worker (stdin closed, then SIGTERM, then
// SIGKILL). A server that exits fails the calls made to it with what it said last.
package toolserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/trialcat/trialcat/internal/buildinfo"
	"github.com/trialcat/trialcat/internal/llm"
	"github.com/trialcat/trialcat/internal/proc"
)

// Defaults of Config.
const (
	DefaultStartTimeout = 30 * time.Second
	DefaultCallTimeout  = 60 * time.Second
	// maxResultBytes bounds one call's text shown to the model.
	maxResultBytes = 32 << 10
	stderrKept     = 5
)

// ErrExited means the server's process ended.
var ErrExited = errors.New("the MCP server exited")

// EnvPassed are the variables of the worker's environment a server gets; no other (the API key
// least of all) reaches it.
var EnvPassed = []string{"PATH", "HOME", "USER", "LANG", "LC_ALL", "TMPDIR", "TZ"}

// Config starts one server.
type Config struct {
	// Argv is the program (a path) and its arguments.
	Argv []string
	// Env is the server's whole environment.
	Env []string
	// Stderr gets each line the server writes to its stderr.
	Stderr func(line string)
	// StartTimeout bounds start-up (the initialize handshake and the tool list);
	// CallTimeout each call. 0 means the defaults.
	StartTimeout, CallTimeout time.Duration
}

// Server is a running MCP server. It is safe for concurrent use.
type Server struct {
	name    string
	cfg     Config
	p       *proc.Process
	session *mcp.ClientSession
	tools   []llm.Tool
	exited  chan struct{}
	exit    proc.Exit

	mu     sync.Mutex
	stderr []string
}

// Start starts the server, runs the MCP handshake and lists its tools.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if len(cfg.Argv) == 0 {
		return nil, errors.New("no MCP server command")
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = DefaultStartTimeout
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	s := &Server{name: filepath.Base(cfg.Argv[0]), cfg: cfg, exited: make(chan struct{})}
	pr, pw := io.Pipe()
	p, err := proc.Start(context.Background(), proc.Spec{
		Name: "mcp-" + s.name, Path: cfg.Argv[0], Args: cfg.Argv[1:], Env: cfg.Env, Stdin: true,
		Logger: hclog.New(&hclog.LoggerOptions{Output: lineWriter{s.noteStderr}, Level: hclog.Info, DisableTime: true}),
		OnStdout: func(line []byte) {
			// One JSON-RPC message a line; the SDK reads them from the pipe.
			_, _ = pw.Write(append(line, '\n'))
		},
	})
	if err != nil {
		return nil, fmt.Errorf("start the MCP server %s: %w", strings.Join(cfg.Argv, " "), err)
	}
	s.p = p
	go func() {
		s.exit = p.Wait()
		close(s.exited)
		_ = pw.CloseWithError(fmt.Errorf("%w (%s)", ErrExited, s.exit))
	}()
	client := mcp.NewClient(&mcp.Implementation{Name: "trialcat", Version: buildinfo.Release}, nil)
	sctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	session, err := client.Connect(sctx, &mcp.IOTransport{Reader: pr, Writer: p.Stdin()}, nil)
	if err != nil {
		s.Stop()
		return nil, s.failure("initialize", err)
	}
	s.session = session
	for t, err := range session.Tools(sctx, nil) {
		if err != nil {
			s.Stop()
			return nil, s.failure("list its tools", err)
		}
		params, _ := t.InputSchema.(map[string]any)
		if params == nil {
			params = map[string]any{"type": "object", "properties": map[string]any{}}
		}
		// Not strict: an MCP server's schemas are not written for OpenAI's strict subset.
		s.tools = append(s.tools, llm.Tool{Name: t.Name, Description: t.Description, Parameters: params})
	}
	if len(s.tools) == 0 {
		s.Stop()
		return nil, fmt.Errorf("the MCP server %s offers no tools", s.name)
	}
	return s, nil
}

// Name is the server's program name.
func (s *Server) Name() string { return s.name }

// Tools are the server's tools, as listed at start.
func (s *Server) Tools() []llm.Tool { return s.tools }

// Call calls a tool. isError is the tool's own failure (its text is for the model); err is the
// server's: it exited, broke the protocol or did not answer in time.
func (s *Server) Call(ctx context.Context, name string, args json.RawMessage) (string, bool, error) {
	cctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	res, err := s.session.CallTool(cctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		if ctx.Err() != nil {
			return "", false, ctx.Err()
		}
		if cctx.Err() != nil {
			// A slow tool is the tool's failure, not the server's: the model is told and goes on.
			return fmt.Sprintf("The tool %s did not answer within %s.", name, s.cfg.CallTimeout), true, nil
		}
		return "", false, s.failure("call "+name, err)
	}
	var b strings.Builder
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			if b.Len() > 0 {
				b.WriteString("\n")
			}
			b.WriteString(t.Text)
		}
	}
	if b.Len() == 0 && res.StructuredContent != nil {
		raw, _ := json.Marshal(res.StructuredContent)
		b.Write(raw)
	}
	return llm.Clip(b.String(), maxResultBytes), res.IsError, nil
}

// Stop ends the session and the process: stdin closed, then SIGTERM, then SIGKILL.
func (s *Server) Stop() {
	if s.session != nil {
		done := make(chan struct{})
		go func() { _ = s.session.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
		}
	}
	_ = s.p.Stdin().Close()
	select {
	case <-s.exited:
		return
	case <-time.After(time.Second):
	}
	s.p.Stop()
	<-s.exited
}

// failure explains a failed step: the exit and last stderr lines of a server that ended.
func (s *Server) failure(step string, err error) error {
	select {
	case <-s.exited:
	case <-time.After(200 * time.Millisecond):
	}
	msg := fmt.Sprintf("the MCP server %s failed to %s: %v", s.name, step, err)
	select {
	case <-s.exited:
		msg = fmt.Sprintf("the MCP server %s exited (%s) when asked to %s", s.name, s.exit, step)
	default:
	}
	s.mu.Lock()
	tail := strings.Join(s.stderr, " | ")
	s.mu.Unlock()
	if tail != "" {
		msg += "; its stderr said: " + llm.Clip(tail, 600)
	}
	return errors.New(msg)
}

func (s *Server) noteStderr(line string) {
	s.mu.Lock()
	s.stderr = append(s.stderr, line)
	if len(s.stderr) > stderrKept {
		s.stderr = s.stderr[len(s.stderr)-stderrKept:]
	}
	s.mu.Unlock()
	if s.cfg.Stderr != nil {
		s.cfg.Stderr(line)
	}
}

// lineWriter hands each line written to it to fn.
type lineWriter struct{ fn func(string) }

func (w lineWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		// proc logs each line as "[LEVEL] mcp-NAME: text": the text is the server's.
		if strings.HasPrefix(line, "[") {
			if _, rest, ok := strings.Cut(line, ": "); ok {
				line = rest
			}
		}
		if line = strings.TrimSpace(line); line != "" {
			w.fn(line)
		}
	}
	return len(p), nil
}
