package slurm

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"text/template"
)

// Script is what the array's batch script says.
type Script struct {
	JobName string
	// Batches is the number of batches: the script's array is 0 to Batches-1.
	Batches int
	// MaxParallel is the array's throttle (tasks running at once); 0 means no throttle.
	MaxParallel int
	// RateShare is the number of tasks that share the run's rate limit when they cannot reach
	// a limit server (the worker's --rate-share); 0 means none (the worker has it all).
	RateShare int
	RunDir    string // absolute
	Worker    string // absolute path of the worker binary
	LogDir    string // absolute; one log per task, task_N.log
	LogName   string // the task log's name with %a for the index
	Partition string
	Time      string
	Mem       string
	Extra     []string // more #SBATCH lines, each one option as sbatch takes it
	Prelude   string   // absolute path of a shell snippet sourced before the worker; "" for none
}

// Array is the script's own --array value: every batch, with the throttle.
func (s Script) Array() string { return ArraySpec(seq(s.Batches), s.MaxParallel) }

// ArraySpec is an --array value for the indices with throttle k (0: none).
func ArraySpec(indices []int, k int) string {
	v := FormatIndices(indices)
	if k > 0 {
		v += "%" + strconv.Itoa(k)
	}
	return v
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

var scriptTmpl = template.Must(template.New("sbatch").Funcs(template.FuncMap{"q": Quote}).Parse(`#!/bin/bash
# One Slurm array task per batch of the run in {{.RunDir}}:
# task N runs the worker over batch_N.json (N is SLURM_ARRAY_TASK_ID).
#
# Written by "coordinator slurm"; edit it freely and submit it by hand with
#   sbatch {{q .Path}}
# (an --array on the sbatch command line overrides the one below: --array=3,7 runs just those).
#
# The API key is not in this file. sbatch hands the submitting shell's environment to the tasks
# (--export=ALL, its default), so OPENAI_API_KEY set where you submit reaches the workers. Where
# the site or your own sbatch options export less, name it: --export=NONE,OPENAI_API_KEY passes
# only the variable's value from your environment, never through this file.
#
# Worker exit codes: 0 done; 1 some records failed (rerun resubmits them); 2 usage, or another
# worker holds the batch; 3 the API refused the run (a bad key, no quota: retrying will not help);
# 4 the worker cannot write its files (a full disk); 130 interrupted (requeue resumes it).
#SBATCH --job-name={{.JobName}}
#SBATCH --array={{.Array}}
#SBATCH --output={{.LogDir}}/{{.LogName}}
#SBATCH --open-mode=append
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=1
{{- if .Partition}}
#SBATCH --partition={{.Partition}}{{end}}
{{- if .Time}}
#SBATCH --time={{.Time}}{{end}}
{{- if .Mem}}
#SBATCH --mem={{.Mem}}{{end}}
{{- range .Extra}}
#SBATCH {{.}}{{end}}
set -uo pipefail

RUN_DIR={{q .RunDir}}
WORKER={{q .Worker}}
# The worker's arguments; a prelude may add to them, for example
#   WORKER_ARGS+=(--base-url http://127.0.0.1:8000/v1 --concurrency 32)
WORKER_ARGS=(--run-dir "$RUN_DIR"{{if .RateShare}} --rate-share {{.RateShare}}{{end}})
{{- if .Prelude}}

# The prelude: starts what the worker needs on this node (a local model server, say).
source {{q .Prelude}} || { echo "task prelude failed: $?" >&2; exit 2; }
{{- end}}

echo "$(date -u +%FT%TZ) task ${SLURM_ARRAY_TASK_ID:-?} of job ${SLURM_ARRAY_JOB_ID:-?} on $(hostname): batch_${SLURM_ARRAY_TASK_ID:-?}.json" >&2
"$WORKER" "${WORKER_ARGS[@]}"
code=$?
echo "$(date -u +%FT%TZ) task ${SLURM_ARRAY_TASK_ID:-?}: worker exited $code" >&2
exit $code
`))

// rendered is what the template reads: the script, the path it is written to (named in its
// own comment) and its --array value.
type rendered struct {
	Script
	Path  string
	Array string
}

// Render returns the batch script's text; path is where it will be written (named in its
// comment).
func Render(s Script, path string) (string, error) {
	for _, e := range s.Extra {
		if strings.ContainsAny(e, "\n\r") {
			return "", fmt.Errorf("--sbatch-arg %q: one option per argument, without line breaks", e)
		}
	}
	for name, v := range map[string]string{"--partition": s.Partition, "--time": s.Time, "--mem": s.Mem} {
		if strings.ContainsAny(v, " \t\n\r") {
			return "", fmt.Errorf("%s %q: no spaces or line breaks", name, v)
		}
	}
	var b strings.Builder
	if err := scriptTmpl.Execute(&b, rendered{Script: s, Path: path, Array: s.Array()}); err != nil {
		return "", fmt.Errorf("render the batch script: %w", err)
	}
	return b.String(), nil
}

// Quote quotes s for the shell, unless it is made only of safe characters.
func Quote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+=:,@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// JobsNamed lists the IDs of the jobs Slurm knows by name (queued, running, or recently ended).
func JobsNamed(ctx context.Context, r Runner, name string) ([]string, error) {
	out, err := r.Run(ctx, "squeue", "-h", "-t", "all", "--name="+name, "-o", "%F")
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var ids []string
	for _, l := range strings.Fields(string(out)) {
		if !seen[l] {
			seen[l] = true
			ids = append(ids, l)
		}
	}
	sort.Strings(ids)
	return ids, nil
}
