package worker

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/trialcat/trialcat/internal/exitcode"
	"github.com/trialcat/trialcat/internal/llm"
	"github.com/trialcat/trialcat/internal/runspec"
	"github.com/trialcat/trialcat/internal/wire"
)

// failFastAfter is how long a worker that has had no answer yet keeps trying a server it cannot
// reach (or whose endpoint answers 404) before it stops the run: a wrong base URL or a server
// that is not running must not burn through every record for minutes.
const failFastAfter = 10 * time.Second

// reachability watches the first answers of a worker process. Until one answer arrives, a run
// of unreachable attempts lasting failFastAfter, or two 404s for the endpoint, stop the worker
// with exit 3 and a message that names the URL and what to check. After an answer, an outage
// is waited out instead (the attempts do not count, and the rate limiter pauses everyone).
type reachability struct {
	mu        sync.Mutex
	answered  bool
	notFound  int
	timer     *time.Timer
	lastCause string
	stopped   bool
}

func (g *reachability) note(r *runner, a llm.Attempt) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.answered || g.stopped {
		return
	}
	switch {
	case a.Err == nil || (a.Err.Class != llm.ClassUnreachable && a.Err.Class != llm.ClassEndpointNotFound && a.Err.Class != llm.ClassCanceled):
		// The server answered (even with an error of its own).
		g.answered = true
		if g.timer != nil {
			g.timer.Stop()
		}
	case a.Err.Class == llm.ClassEndpointNotFound:
		g.notFound++
		if g.notFound >= 2 {
			g.stopLocked(r, fmt.Sprintf("%s answered 404 for its chat completions endpoint: it is not an OpenAI-compatible API root; "+
				"check --base-url or OPENAI_BASE_URL (it usually ends in /v1)", r.baseURL()))
		}
	case a.Err.Class == llm.ClassUnreachable:
		g.lastCause = rootCause(a.Err.Message)
		if g.timer == nil {
			g.timer = time.AfterFunc(failFastAfter, func() {
				g.mu.Lock()
				defer g.mu.Unlock()
				if !g.answered && !g.stopped {
					g.stopLocked(r, fmt.Sprintf("cannot reach %s: %s; check --base-url or OPENAI_BASE_URL and that the server is running",
						r.baseURL(), g.lastCause))
				}
			})
		}
	}
}

// stopLocked stops the worker: the records not answered stay to do.
func (g *reachability) stopLocked(r *runner, msg string) {
	g.stopped = true
	r.log.Error().Msg(msg)
	r.emit(wire.Msg{Type: wire.Fatal, Class: string(llm.ClassUnreachable), Message: msg})
	if r.cancel != nil {
		r.cancel(exitcode.Refused(msg))
	}
}

func (g *reachability) stop() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.stopped = true
	if g.timer != nil {
		g.timer.Stop()
	}
}

// baseURL is the URL the worker calls, as it may be shown (no user:password).
func (r *runner) baseURL() string {
	u := r.spec.BaseURL
	if u == "" {
		u = llm.DefaultBaseURL
	}
	pub, _ := runspec.PublicURL(u)
	return strings.TrimSuffix(pub, "/")
}

// rootCause is the last part of a network error message: "connection refused", "no such host".
func rootCause(msg string) string {
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		return msg[i+2:]
	}
	return msg
}
