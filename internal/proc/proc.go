package proc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// DefaultGrace is the time a child gets between SIGTERM and SIGKILL when Spec.Grace is zero.
const DefaultGrace = 5 * time.Second

// maxLine bounds one stdout or stderr line kept in memory; the rest of a longer line is dropped.
const maxLine = 16 << 20

// Spec describes a child process.
type Spec struct {
	// Name identifies the child in logs, e.g. "worker-3". Defaults to the program's base name.
	Name string
	// Path is the program to run; Args are its arguments (without the program name). No shell.
	Path string
	Args []string
	// Env is the child's whole environment. It is never inherited implicitly: nil means an
	// empty environment. Pass secrets here, never in Args (argv is world-readable).
	Env []string
	// Dir is the child's working directory; "" means the parent's.
	Dir string
	// Logger receives the child's stderr lines, under Logger.Named(Name). Nil discards them.
	Logger hclog.Logger
	// OnStdout, if set, is called with each stdout line (without its line end), one at a time,
	// from one goroutine. The slice belongs to the callee. While it runs, the child's writes to
	// stdout may block. Nil discards stdout.
	OnStdout func(line []byte)
	// Stdin, if true, connects a pipe to the child's stdin (Process.Stdin); the child sees EOF
	// when the pipe is closed or the parent dies. If false, stdin is the null device.
	Stdin bool
	// Grace is the time between SIGTERM and SIGKILL, for Stop and for the cancellation of the
	// context given to Start. Zero means DefaultGrace.
	Grace time.Duration
	// OnStart, if set, is called once the child has started and before its first stdout line
	// is read: the place to register the process (its Stdin) with whatever answers its lines.
	OnStart func(*Process)
}

// Process is a started child process. Wait must be called once it is started.
type Process struct {
	name  string
	grace time.Duration
	log   hclog.Logger
	cmd   *exec.Cmd
	stdin io.WriteCloser
	start time.Time

	onStdout func([]byte)
	pipes    sync.WaitGroup // the stdout and stderr readers
	readEnds []*os.File     // closed to unblock the readers if a grandchild keeps the pipes open

	stopOnce  sync.Once
	mu        sync.Mutex
	killTimer *time.Timer // armed by Stop
	exited    bool        // Wait saw the process exit

	waitOnce sync.Once
	exit     Exit
}

// Start starts the child described by spec. When ctx is done the child gets SIGTERM, then SIGKILL
// if it is still running after spec.Grace. Wait must be called after a successful Start.
func Start(ctx context.Context, spec Spec) (*Process, error) {
	if spec.Name == "" {
		spec.Name = filepath.Base(spec.Path)
	}
	if spec.Path == "" {
		return nil, errors.New("start: no program path")
	}
	if spec.Grace <= 0 {
		spec.Grace = DefaultGrace
	}
	log := spec.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	p := &Process{
		name:     spec.Name,
		grace:    spec.Grace,
		log:      log.Named(spec.Name),
		onStdout: spec.OnStdout,
	}

	cmd := exec.CommandContext(ctx, spec.Path, spec.Args...) //nolint:gosec // an argv slice the caller built, never a shell line
	cmd.Env = spec.Env
	if cmd.Env == nil {
		cmd.Env = []string{} // nil would inherit the parent's environment
	}
	cmd.Dir = spec.Dir
	cmd.SysProcAttr = sysProcAttr()
	cmd.Cancel = func() error { return terminate(cmd.Process) }
	cmd.WaitDelay = spec.Grace
	p.cmd = cmd

	// Own pipes rather than cmd.StdoutPipe: Wait would close those before the readers drained them.
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.Name, err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		closeAll(outR, outW)
		return nil, fmt.Errorf("start %s: %w", spec.Name, err)
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	if spec.Stdin {
		if p.stdin, err = cmd.StdinPipe(); err != nil {
			closeAll(outR, outW, errR, errW)
			return nil, fmt.Errorf("start %s: %w", spec.Name, err)
		}
	}
	if err := cmd.Start(); err != nil {
		closeAll(outR, outW, errR, errW)
		if p.stdin != nil {
			_ = p.stdin.Close()
		}
		return nil, fmt.Errorf("start %s: %w", spec.Name, err)
	}
	p.start = time.Now()
	closeAll(outW, errW) // the child holds its own copies; ours would keep the readers from EOF
	if spec.OnStart != nil {
		spec.OnStart(p)
	}
	p.readEnds = []*os.File{outR, errR}
	p.pipes.Add(2)
	go p.readLines(outR, p.stdoutLine)
	go p.readLines(errR, p.stderrLine)
	p.log.Debug("started", "pid", cmd.Process.Pid, "path", spec.Path)
	return p, nil
}

func closeAll(files ...*os.File) {
	for _, f := range files {
		_ = f.Close()
	}
}

// PID returns the child's process ID.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Stdin returns the writer to the child's stdin, or nil if Spec.Stdin was false. Closing it
// gives the child EOF. Writes after the child exited fail (EPIPE).
func (p *Process) Stdin() io.WriteCloser { return p.stdin }

// Stop asks the child to stop: SIGTERM now, SIGKILL after the grace period if it is still running.
// It does not wait; call Wait for that. It is safe to call many times, concurrently, and after the
// child exited.
func (p *Process) Stop() {
	p.stopOnce.Do(func() {
		if err := terminate(p.cmd.Process); err != nil && !errors.Is(err, os.ErrProcessDone) {
			p.log.Debug("stop: signal failed", "error", err)
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if !p.exited {
			p.killTimer = time.AfterFunc(p.grace, p.Kill)
		}
	})
}

// Kill sends SIGKILL now. It is safe to call many times and after the child exited.
func (p *Process) Kill() {
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.log.Debug("kill failed", "error", err)
	}
}

// Wait waits for the child to exit and for its stdout and stderr to be drained, and returns how it
// ended. Later calls return the same Exit.
func (p *Process) Wait() Exit {
	p.waitOnce.Do(func() {
		err := p.cmd.Wait()
		d := time.Since(p.start)
		p.mu.Lock()
		p.exited = true
		if p.killTimer != nil {
			p.killTimer.Stop()
		}
		p.mu.Unlock()
		p.drain()
		p.exit = newExit(p.cmd.ProcessState, err, d)
	})
	return p.exit
}

// drain waits for the stdout and stderr readers. The child has exited, so they end at EOF unless a
// process it started still holds the pipes; after the grace period the pipes are closed.
func (p *Process) drain() {
	done := make(chan struct{})
	go func() {
		p.pipes.Wait()
		close(done)
	}()
	t := time.NewTimer(p.grace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		p.log.Warn("output still open after the process exited (a process it started holds it?); closing it")
		closeAll(p.readEnds...)
		<-done
	}
}

// readLines reads r line by line until EOF and passes each non-empty line to handle.
func (p *Process) readLines(r *os.File, handle func([]byte)) {
	defer p.pipes.Done()
	defer r.Close()
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, dropped, err := readLine(br)
		if dropped > 0 {
			p.log.Warn("line too long; its end was dropped", "kept_bytes", len(line), "dropped_bytes", dropped)
		}
		if len(line) > 0 {
			handle(line)
		}
		if err != nil {
			// EOF, or the pipe closed by drain: the exit status, not this, tells how the child ended.
			if !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrClosed) {
				p.log.Debug("read output", "error", err)
			}
			return
		}
	}
}

// readLine returns the next line without its "\n" or "\r\n", keeping at most maxLine bytes and
// counting the bytes dropped beyond that. The line is a fresh slice.
func readLine(br *bufio.Reader) (line []byte, dropped int, err error) {
	for {
		frag, err := br.ReadSlice('\n')
		if keep := min(len(frag), maxLine-len(line)); keep > 0 {
			line = append(line, frag[:keep]...)
			dropped += len(frag) - keep
		} else {
			dropped += len(frag)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if dropped == 0 {
			line = bytes.TrimSuffix(line, []byte("\n"))
			line = bytes.TrimSuffix(line, []byte("\r"))
		}
		return line, dropped, err
	}
}

func (p *Process) stdoutLine(line []byte) {
	if p.onStdout != nil {
		p.onStdout(line)
	}
}

// stderrLine re-logs one stderr line: a zerolog JSON line at its own level with its fields, any
// other line verbatim at Error level.
func (p *Process) stderrLine(line []byte) {
	if len(bytes.TrimSpace(line)) == 0 {
		return
	}
	if level, msg, kvs, ok := parseZerolog(line); ok {
		p.log.Log(level, msg, kvs...)
		return
	}
	p.log.Error(string(line))
}

// parseZerolog decodes a JSON object log line. "level" sets the level (Info if absent), "message"
// the message, "time" is dropped (the parent stamps its own), and the other fields become
// key/value pairs in their order in the line. ok is false if the line is not one JSON object.
func parseZerolog(line []byte) (level hclog.Level, msg string, kvs []any, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return 0, "", nil, false
	}
	level = hclog.Info
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return 0, "", nil, false
		}
		key, isKey := tok.(string)
		var raw json.RawMessage
		if !isKey || dec.Decode(&raw) != nil {
			return 0, "", nil, false
		}
		v := jsonValue(raw)
		s, isString := v.(string)
		switch {
		case key == "time":
			continue
		case key == "message" && isString:
			msg = s
			continue
		case key == "level" && isString:
			l, exact := zerologLevel(s)
			level = l
			if exact {
				continue
			}
		}
		kvs = append(kvs, key, v)
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return 0, "", nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return 0, "", nil, false // more after the object
	}
	return level, msg, kvs, true
}

// zerologLevel maps a zerolog level name to an hclog level. exact is false when hclog has no such
// level (fatal, panic, unknown names); the caller then keeps the name as a field.
func zerologLevel(s string) (l hclog.Level, exact bool) {
	switch s {
	case "trace":
		return hclog.Trace, true
	case "debug":
		return hclog.Debug, true
	case "info":
		return hclog.Info, true
	case "warn":
		return hclog.Warn, true
	case "error":
		return hclog.Error, true
	case "fatal", "panic":
		return hclog.Error, false
	default:
		return hclog.Info, false
	}
}

// jsonValue turns a raw JSON value into a log value: strings, numbers, booleans and null as such,
// objects and arrays as their JSON text.
func jsonValue(raw json.RawMessage) any {
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	case 't':
		return true
	case 'f':
		return false
	case 'n':
		return nil
	case '{', '[':
		return string(raw)
	default:
		return json.Number(raw)
	}
	return string(raw)
}

// Exit tells how a child ended.
type Exit struct {
	// Code is the exit code, -1 if the child was ended by a signal or the status is unknown.
	Code int
	// Signal is the name of the signal that ended the child ("SIGKILL"), "" if it exited.
	Signal string
	// Err is set only when the exit status could not be learned (a failed wait). A non-zero exit,
	// and the SIGTERM or SIGKILL sent because the context was done, are described by Code and
	// Signal instead.
	Err error
	// Duration is the time from start to exit.
	Duration time.Duration
}

func newExit(state *os.ProcessState, err error, d time.Duration) Exit {
	e := Exit{Code: -1, Duration: d}
	if state == nil {
		e.Err = err
		if e.Err == nil {
			e.Err = errors.New("no exit status")
		}
		return e
	}
	e.Code = state.ExitCode()
	e.Signal = signalName(state)
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) && !errors.Is(err, context.Canceled) &&
		!errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, exec.ErrWaitDelay) {
		e.Err = err
	}
	return e
}

// Success reports whether the child exited with code 0.
func (e Exit) Success() bool { return e.Err == nil && e.Signal == "" && e.Code == 0 }

// String describes the exit: "exit 0", "exit 3", "killed by SIGKILL".
func (e Exit) String() string {
	switch {
	case e.Err != nil:
		return "wait failed: " + e.Err.Error()
	case e.Signal != "":
		return "killed by " + e.Signal
	default:
		return fmt.Sprintf("exit %d", e.Code)
	}
}
