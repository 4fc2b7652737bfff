package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/trialcat/trialcat/internal/profile"
	"github.com/trialcat/trialcat/internal/results"
	"github.com/trialcat/trialcat/internal/rundir"
	"github.com/trialcat/trialcat/internal/summary"
	"github.com/trialcat/trialcat/internal/wire"
	"golang.org/x/sys/unix"
)

// logLine is one output line of a process, stamped when it arrived.
type logLine struct {
	At   time.Duration // since the coordinator was started
	Text string
}

// procRun is one finished child process (a coordinator, a merge or a worker run by hand).
type procRun struct {
	Args     []string      `json:"args"`
	Wall     time.Duration `json:"-"`
	WallS    float64       `json:"wall_s"`
	ExitCode int           `json:"exit_code"`
	// SelfCPUS is the process's own user+system CPU; ChildrenCPUS that of the children it
	// waited for (the workers), both read from /proc while it was a zombie.
	SelfCPUS     float64 `json:"self_cpu_s"`
	ChildrenCPUS float64 `json:"children_cpu_s"`
	// PeakRSSKB is the largest VmHWM seen while polling /proc every 20ms (the process only).
	PeakRSSKB int64 `json:"peak_rss_kb_polled"`
	// ChildPeakRSSKB is the largest VmHWM of any child (worker) seen while polling every
	// 100ms; ChildrenSeen how many children were seen. VmHWM is per address space, so unlike
	// ru_maxrss it does not include the parent's RSS at the fork.
	ChildPeakRSSKB int64 `json:"child_peak_rss_kb_polled"`
	// PeakAnonKB and ChildPeakAnonKB are the largest RssAnon seen: private memory, without the
	// binary's file-backed pages that every worker maps and shares.
	PeakAnonKB      int64 `json:"peak_anon_kb_polled"`
	ChildPeakAnonKB int64 `json:"child_peak_anon_kb_polled"`
	ChildrenSeen    int   `json:"children_seen"`
	// RusageMaxRSSKB is wait4's ru_maxrss: the largest of the process and its waited children.
	RusageMaxRSSKB int64 `json:"rusage_maxrss_kb"`
	// MachineBusyS is the CPU the whole machine used during the run (from /proc/stat); what
	// the run's own processes and this program did not use was someone else's.
	MachineBusyS float64   `json:"machine_busy_cpu_s"`
	Lines        []logLine `json:"-"` // stderr, for error messages
	Events       []logLine `json:"-"` // stdout: a worker's wire lines with --events
	Stdout       string    `json:"-"`
	Started      time.Time `json:"started"`
}

// runProc runs path with args and exactly env, stamping every stderr line as it arrives.
// It reads the process's CPU times from /proc after it exits and before it is reaped.
func runProc(ctx context.Context, path string, args, env []string, timeout time.Duration) (*procRun, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.Command(path, args...) //nolint:gosec // the benchmark's own binaries, with an argv slice
	cmd.Env = env
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	stdoutR, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	// Stdin stays open until the process has exited: a worker run with --events takes its end
	// as its coordinator going away, and reads its permits there.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	defer stdin.Close()
	run := &procRun{Args: append([]string{path}, args...)}
	run.Started = time.Now()
	busy0 := machineBusy()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", path, err)
	}
	pid := cmd.Process.Pid
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			run.Lines = append(run.Lines, logLine{At: time.Since(run.Started), Text: sc.Text()})
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	var stdout bytes.Buffer
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(stdoutR)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		grants := wire.NewWriter(stdin)
		for sc.Scan() {
			run.Events = append(run.Events, logLine{At: time.Since(run.Started), Text: sc.Text()})
			stdout.Write(sc.Bytes())
			stdout.WriteByte('\n')
			// A worker run with --events asks its coordinator for rate permits: grant them.
			if m, err := wire.Decode(sc.Bytes()); err == nil && m.Type == wire.Acquire {
				_ = grants.Send(wire.Msg{Type: wire.Grant, Seq: m.Seq})
			}
		}
		_, _ = io.Copy(io.Discard, stdoutR)
	}()
	stopPoll := make(chan struct{})
	pollDone := make(chan struct{})
	go func() {
		defer close(pollDone)
		// Every 2ms for the first 400ms (a worker run by hand lives ~10ms; VmHWM only
		// grows, so the last sample before the exit is close to the peak), then every 20ms.
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		children := map[int]int64{}
		for i := 0; ; i++ {
			if i == 200 {
				t.Reset(20 * time.Millisecond)
			}
			if hwm, anon := memKB(pid); hwm > 0 {
				run.PeakRSSKB = max(run.PeakRSSKB, hwm)
				run.PeakAnonKB = max(run.PeakAnonKB, anon)
			}
			if i%5 == 0 {
				for _, c := range childPIDs(pid) {
					if !isWorker(c) {
						continue // not yet exec'd: it still shows the coordinator's memory
					}
					hwm, anon := memKB(c)
					children[c] = max(children[c], hwm)
					run.ChildPeakAnonKB = max(run.ChildPeakAnonKB, anon)
				}
				for _, kb := range children {
					run.ChildPeakRSSKB = max(run.ChildPeakRSSKB, kb)
				}
				run.ChildrenSeen = len(children)
			}
			select {
			case <-stopPoll:
				return
			case <-t.C:
			}
		}
	}()
	killed := make(chan struct{})
	go func() {
		// Past the timeout, interrupt it like Ctrl-C (it merges what is done), then kill.
		select {
		case <-ctx.Done():
			_ = cmd.Process.Signal(os.Interrupt)
		case <-killed:
			return
		}
		select {
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
		case <-killed:
		}
	}()
	// Wait for the exit without reaping, so /proc/PID/stat still holds the final CPU times.
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	run.Wall = time.Since(run.Started)
	run.MachineBusyS = machineBusy() - busy0
	close(stopPoll)
	<-pollDone
	run.SelfCPUS, run.ChildrenCPUS = procCPU(pid)
	close(killed)
	wg.Wait()
	werr := cmd.Wait()
	run.WallS = run.Wall.Seconds()
	run.Stdout = stdout.String()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && ru != nil {
		run.RusageMaxRSSKB = ru.Maxrss
	}
	run.ExitCode = cmd.ProcessState.ExitCode()
	var ee *exec.ExitError
	if werr != nil && !errors.As(werr, &ee) {
		return run, werr
	}
	if ctx.Err() != nil {
		return run, fmt.Errorf("%s: timed out after %s", filepath.Base(path), timeout)
	}
	return run, nil
}

// procCPU reads utime+stime and cutime+cstime of pid in seconds.
func procCPU(pid int) (self, children float64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0
	}
	s := string(b)
	// Fields after the command name, which is in parentheses and may hold spaces.
	rest := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	// rest[0] is field 3 (state); utime is field 14.
	num := func(field int) float64 {
		v, _ := strconv.ParseFloat(rest[field-3], 64)
		return v / 100 // clock ticks; USER_HZ is 100 on Linux
	}
	if len(rest) < 15 {
		return 0, 0
	}
	return num(14) + num(15), num(16) + num(17)
}

// machineBusy is the CPU time the machine has spent not idle since boot, in seconds.
func machineBusy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var busy float64
	for i, v := range f[1:] {
		n, _ := strconv.ParseFloat(v, 64)
		if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest times are already in user
			continue
		}
		busy += n
	}
	return busy / 100
}

// isWorker reports whether pid runs the worker binary.
func isWorker(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return err == nil && strings.TrimSpace(string(b)) == "worker"
}

// childPIDs lists the children of pid (of any of its threads).
func childPIDs(pid int) []int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// memKB returns the process's peak resident set size (VmHWM) and its current private
// resident memory (RssAnon) in KiB, or zeros.
func memKB(pid int) (hwm, anon int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		key, rest, ok := strings.Cut(l, ":")
		if !ok || (key != "VmHWM" && key != "RssAnon") {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, _ := strconv.ParseInt(f[0], 10, 64)
		if key == "VmHWM" {
			hwm = v
		} else {
			anon = v
		}
	}
	return hwm, anon
}

// selfCPU is this process's user+system CPU in seconds (the in-process fake's, mostly).
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// env builds a child's whole environment: PATH and HOME, plus extra.
func env(extra ...string) []string {
	e := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	if tmp := os.Getenv("TMPDIR"); tmp != "" {
		e = append(e, "TMPDIR="+tmp)
	}
	return append(e, extra...)
}

func readSummary(out string) (*summary.Summary, error) {
	return summary.Load(rundir.New(out).Summary())
}

// resultRow is what the benchmarks read from final_results.csv.
type resultRow struct {
	LatencyMS float64
	Worker    int
}

// readResults reads final_results.csv through its layout, by column name, and refuses a file
// that holds a record twice: a measured run must lose nothing and double nothing (the callers
// check the count).
func readResults(out string) ([]resultRow, error) {
	var rows []resultRow
	seen := map[string]bool{}
	_, err := results.ReadFile(rundir.New(out).FinalResults(), func(_ results.Layout, r results.Row) error {
		if seen[r.ID] {
			return fmt.Errorf("%s: record %s is in final_results.csv twice", out, r.ID)
		}
		seen[r.ID] = true
		rows = append(rows, resultRow{LatencyMS: float64(r.LatencyMS), Worker: r.Worker})
		return nil
	})
	return rows, err
}

// phases are the coordinator's phases, read from the arrival times of its log lines.
type phases struct {
	// StartupS: start until the input check begins (flags, schema, prompt).
	StartupS float64 `json:"startup_s"`
	// SplitS: the input check until the split could start: one pass over the whole input for
	// its IDs, count and hash, and run.json written (to the batches being ready, for runs
	// from before the pipelined split).
	SplitS float64 `json:"check_and_split_s"`
	// FirstSpawnS: from there until the first worker was started: the first batch file's
	// records checked (every prompt rendered) and written. The other batch files are written
	// while the workers run.
	FirstSpawnS float64 `json:"to_first_spawn_s"`
	// ToFirstRequestS: start until a worker first asked for a rate permit (its first request).
	ToFirstRequestS float64 `json:"to_first_request_s"`
	// WorkersS: first worker started until the last one's exit was seen.
	WorkersS float64 `json:"workers_s"`
	// MergeS: last worker exit until the coordinator exited (merge, summary.json, report.html).
	MergeS float64 `json:"merge_and_summary_s"`
	// Spawns is the number of worker processes started; SpawnReady* the time from a batch's
	// hand-over to its worker to its start event (batch read), per batch (its last take-up).
	Spawns         int     `json:"spawns"`
	SpawnReadyMean float64 `json:"spawn_ready_mean_ms"`
	SpawnReadyP90  float64 `json:"spawn_ready_p90_ms"`
	SpawnReadyMax  float64 `json:"spawn_ready_max_ms"`
	// ExitSeenMean is the mean time from a worker's end event to the coordinator seeing it
	// exit (process exit, pipes drained).
	ExitSeenMean float64 `json:"exit_seen_mean_ms"`
	// OverheadS is StartupS+SplitS+FirstSpawnS+MergeS: the coordinator's time outside the
	// workers' span.
	OverheadS float64 `json:"overhead_s"`
	// ToFirstRecordS is start until the first record was done; LastRecordToExitS the last
	// record done until the coordinator exited: the run's edges as a user sees them.
	ToFirstRecordS    float64 `json:"to_first_record_s"`
	LastRecordToExitS float64 `json:"last_record_to_exit_s"`
}

// parsePhases times a coordinator run from summary.json's phase timestamps and per-worker
// timings, against the benchmark's own clock of the process (its start and wall).
func parsePhases(r *procRun, sum *summary.Summary) phases {
	var p phases
	since := func(t time.Time) time.Duration { return t.Sub(r.Started) }
	ph := sum.Phases
	if !ph.CheckingInputAt.IsZero() {
		p.StartupS = since(ph.CheckingInputAt).Seconds()
	}
	splitAt := ph.InputCheckedAt
	if splitAt.IsZero() {
		splitAt = ph.BatchesReadyAt
	}
	if !splitAt.IsZero() && !ph.CheckingInputAt.IsZero() {
		p.SplitS = splitAt.Sub(ph.CheckingInputAt).Seconds()
	}
	if !ph.FirstWorkerAt.IsZero() && !splitAt.IsZero() {
		p.FirstSpawnS = ph.FirstWorkerAt.Sub(splitAt).Seconds()
	}
	if !ph.FirstRequestAt.IsZero() {
		p.ToFirstRequestS = since(ph.FirstRequestAt).Seconds()
	}
	if !ph.LastWorkerExitAt.IsZero() && !ph.FirstWorkerAt.IsZero() {
		p.WorkersS = ph.LastWorkerExitAt.Sub(ph.FirstWorkerAt).Seconds()
		p.MergeS = (r.Wall - since(ph.LastWorkerExitAt)).Seconds()
	}
	var readyMS, exitMS []float64
	p.Spawns = sum.WorkerProcesses
	for _, w := range sum.Workers {
		if w.Processes > 0 {
			readyMS = append(readyMS, w.SpawnReadyMS)
			exitMS = append(exitMS, w.ExitSeenMS)
		}
	}
	st := stats(readyMS)
	p.SpawnReadyMean, p.SpawnReadyP90, p.SpawnReadyMax = st.mean, st.p90, st.max
	p.ExitSeenMean = stats(exitMS).mean
	p.OverheadS = p.StartupS + p.SplitS + p.FirstSpawnS + p.MergeS
	if !ph.FirstRecordAt.IsZero() && !ph.LastRecordAt.IsZero() {
		p.ToFirstRecordS = since(ph.FirstRecordAt).Seconds()
		p.LastRecordToExitS = (r.Wall - since(ph.LastRecordAt)).Seconds()
	}
	return p
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

type summaryStats struct{ mean, p50, p90, max float64 }

func stats(v []float64) summaryStats {
	if len(v) == 0 {
		return summaryStats{}
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	var sum float64
	for _, x := range s {
		sum += x
	}
	return summaryStats{mean: sum / float64(len(s)), p50: s[len(s)/2], p90: s[min(len(s)-1, len(s)*9/10)], max: s[len(s)-1]}
}

// tail returns the last n lines of a run's stderr, for error messages.
func tail(r *procRun, n int) string {
	if r == nil {
		return ""
	}
	var b strings.Builder
	for _, l := range r.Lines[max(0, len(r.Lines)-n):] {
		b.WriteString("    " + l.Text + "\n")
	}
	return b.String()
}

// coordRun is one finished coordinator run.
type coordRun struct {
	Name    string           `json:"name"`
	Input   string           `json:"input"`
	Out     string           `json:"out"`
	Proc    *procRun         `json:"process"`
	Summary *summary.Summary `json:"summary"`
	Phases  phases           `json:"phases"`
	Batches int              `json:"batches"`
}

// coordinator runs bin/coordinator on input into work/name with args added, against baseURL
// (with OPENAI_API_KEY set) or offline when baseURL is "". Exit code 1 (some records failed) is
// not an error: the caller reads the counts.
func (b *bench) coordinator(ctx context.Context, name, input, baseURL string, timeout time.Duration, args ...string) (*coordRun, error) {
	out := filepath.Join(b.work, name)
	_ = os.RemoveAll(out)
	full := []string{"--input", input, "--out", out, "--progress", "off", "--log-level", "debug"}
	var e []string
	if baseURL != "" {
		full = append(full, "--provider", "openai", "--base-url", baseURL)
		e = env("OPENAI_API_KEY=" + fakeKey)
	} else {
		full = append(full, "--provider", "offline")
		e = env()
	}
	full = append(full, args...)
	if b.cfg.Pprof != "" {
		e = append(e, profile.EnvDir+"="+filepath.Join(b.cfg.Pprof, name))
	}
	p, err := runProc(ctx, filepath.Join(b.bin, "coordinator"), full, e, timeout)
	if err != nil {
		return nil, fmt.Errorf("%s: %w\n%s", name, err, tail(p, 15))
	}
	if p.ExitCode != 0 && p.ExitCode != 1 {
		return nil, fmt.Errorf("%s: coordinator exited %d:\n%s", name, p.ExitCode, tail(p, 15))
	}
	sum, err := readSummary(out)
	if err != nil {
		return nil, fmt.Errorf("%s: %w\n%s", name, err, tail(p, 15))
	}
	r := &coordRun{Name: name, Input: input, Out: out, Proc: p, Summary: sum, Phases: parsePhases(p, sum), Batches: len(sum.Workers)}
	return r, nil
}
