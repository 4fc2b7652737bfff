package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/trialcat/trialcat/internal/lockfile"
	"github.com/trialcat/trialcat/internal/ratelimit"
	"github.com/trialcat/trialcat/internal/rundir"
	"github.com/trialcat/trialcat/internal/runspec"
)

// A limit server holds a run's one rate limit for workers that a scheduler runs (Slurm array
// tasks, Kubernetes pods): they reach it over TCP at the address in the run folder's
// limits.json and authenticate with the random token written beside it (mode 0600). Without it
// each task keeps to an equal share of the limit (the worker's --rate-share), which holds the
// limit too but leaves the shares of idle tasks unused.

// DefaultLimitListen is where a limit server listens: every interface, a port the system picks.
const DefaultLimitListen = "127.0.0.1:0"

type limitServer struct {
	path   string
	lock   *lockfile.Lock
	cancel context.CancelFunc
	done   chan error
	srv    *ratelimit.Server
}

// startLimitServer listens on listen and serves the run's rate permits until stop; its
// endpoint is written to the run folder.
func startLimitServer(ctx context.Context, dir rundir.Dir, spec *runspec.Spec, listen string, deps Deps) (*limitServer, error) {
	if spec.RPM == 0 && spec.TPM == 0 {
		deps.Log.Info("the run has no --rpm or --tpm: a limit server has nothing to hold, but it still follows 429s and outages for every task")
	}
	if listen == "" {
		listen = DefaultLimitListen
	}
	// One limit server per run: a second would split the tasks between two budgets.
	lock, holder, err := lockfile.Acquire(dir.LimitsLock())
	if errors.Is(err, lockfile.ErrHeld) {
		return nil, usagef("a limit server (pid %s) already serves %s; use it, or stop it first", holder, dir.Path())
	}
	if err != nil {
		return nil, fmt.Errorf("limit server: %w", err)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		lock.Release()
		return nil, usagef("limit server: listen on %s: %w", listen, err)
	}
	addr, err := advertised(listen, ln.Addr())
	if err != nil {
		ln.Close()
		lock.Release()
		return nil, err
	}
	ep := ratelimit.Endpoint{Address: addr, Token: ratelimit.NewToken(), PID: os.Getpid(), RPM: spec.RPM, TPM: spec.TPM, Started: deps.Now().UTC()}
	if err := ratelimit.SaveEndpoint(dir.Limits(), ep); err != nil {
		ln.Close()
		lock.Release()
		return nil, fmt.Errorf("write %s: %w", dir.Limits(), err)
	}
	lim := ratelimit.New(ratelimit.Config{RPM: spec.RPM, TPM: spec.TPM, OnLearn: func(what string, limit int) {
		deps.Log.Info("the server says this key allows this many a minute: keeping every task to it", "limit", limit, "of", what)
	}})
	srv := ratelimit.NewServer(lim)
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	ls := &limitServer{path: dir.Limits(), lock: lock, cancel: cancel, done: make(chan error, 1), srv: srv}
	go func() {
		ls.done <- srv.Serve(sctx, ln, ep.Token, func(remote string, ok bool) {
			if !ok {
				deps.Log.Warn("limit server: refused a connection without the run's token", "from", remote)
			}
		})
	}()
	deps.Log.Info("limit server listening", "address", addr, "rpm", spec.RPM, "tpm", spec.TPM, "file", dir.Limits())
	return ls, nil
}

// stop ends the server and removes its endpoint file, so later tasks take their share at once.
func (l *limitServer) stop() error {
	os.Remove(l.path)
	l.cancel()
	err := <-l.done
	l.srv.Close()
	l.lock.Release()
	return err
}

// advertised is the address tasks on other nodes dial: the listen host when one is given,
// else this machine's host name.
func advertised(listen string, bound net.Addr) (string, error) {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return "", usagef("--limit-listen %q: want HOST:PORT or :PORT", listen)
	}
	_, port, _ := net.SplitHostPort(bound.String())
	if host == "" || host == "0.0.0.0" || host == "::" {
		if host, err = os.Hostname(); err != nil {
			return "", fmt.Errorf("limit server: this machine's host name: %w", err)
		}
	}
	return net.JoinHostPort(host, port), nil
}

// LimitsOptions are the flags of `coordinator limits`.
type LimitsOptions struct {
	Out    string
	Listen string
}

// Limits serves a split run's rate permits to its workers, wherever a scheduler runs them,
// until interrupted.
func Limits(ctx context.Context, opts LimitsOptions, deps Deps) error {
	deps.defaults()
	dir := rundir.New(opts.Out)
	spec, _, err := loadRun(dir)
	if err != nil {
		return err
	}
	ls, err := startLimitServer(ctx, dir, spec, opts.Listen, deps)
	if err != nil {
		return err
	}
	fmt.Fprintf(deps.Stdout, "serving the rate limit of %s (rpm %d, tpm %d) until Ctrl-C; workers read the address from %s\n",
		opts.Out, spec.RPM, spec.TPM, dir.Limits())
	<-ctx.Done()
	if err := ls.stop(); err != nil {
		return err
	}
	// Ctrl-C is how a limit server is meant to end: stopped cleanly, it exits 0.
	fmt.Fprintf(deps.Stdout, "limit server stopped; tasks still running keep to their equal share\n")
	return nil
}
