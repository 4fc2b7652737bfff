package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/trialcat/trialcat/internal/exitcode"
	"github.com/trialcat/trialcat/internal/k8s"
	"github.com/trialcat/trialcat/internal/rundir"
	"github.com/trialcat/trialcat/internal/runspec"
	"github.com/trialcat/trialcat/internal/safefile"
)

// K8sOptions are the flags of `coordinator k8s`.
type K8sOptions struct {
	// Options are the run's flags; with Input set the input is split first (or the split in
	// Out resumed), else Out must hold a split run.
	Options
	Image       string
	Parallelism int
	Namespace   string
	Secret      string
	PVC         string
	// MountPath is where the pods see the run folder; "" means its absolute path here, so the
	// paths in run.json hold in the pods too.
	MountPath string
}

// K8s writes the run as a Kubernetes Indexed Job manifest (DIR/k8s/job.yaml) and prints how to
// apply it. It talks to no cluster.
func K8s(ctx context.Context, opts K8sOptions, deps Deps) error {
	deps.defaults()
	var spec *runspec.Spec
	if opts.Input != "" {
		if err := noSecretInBaseURL(&opts.Options, "go into the manifest; put the URL in a Secret and OPENAI_BASE_URL instead"); err != nil {
			return err
		}
		p, err := newPlan(ctx, &opts.Options, &deps, deps.Now(), splitNow)
		if err != nil {
			return err
		}
		defer p.release()
		spec = p.spec
	} else {
		var err error
		if spec, _, err = loadRun(rundir.New(opts.Out)); err != nil {
			if errors.Is(err, exitcode.ErrUsage) {
				return usagef("%s holds no split run: give --input (and the run's flags) to split it first, or run coordinator split", opts.Out)
			}
			return err
		}
	}
	abs, err := filepath.Abs(opts.Out)
	if err != nil {
		return fmt.Errorf("--out %s: %w", opts.Out, err)
	}
	mount := opts.MountPath
	if mount == "" {
		mount = abs
	}
	if opts.Parallelism == 0 {
		opts.Parallelism = min(k8s.DefaultParallelism, len(spec.Batches))
	}
	if opts.Secret == "" {
		opts.Secret = k8s.DefaultSecret
	}
	share := 0
	if spec.RPM > 0 || spec.TPM > 0 {
		share = min(opts.Parallelism, len(spec.Batches))
	}
	job := k8s.Job{
		Name: runJobName(abs, spec), Namespace: opts.Namespace, Image: opts.Image,
		Completions: len(spec.Batches), Parallelism: opts.Parallelism, RateShare: share,
		BackoffLimitPerIndex: k8s.DefaultBackoff, Secret: opts.Secret, SecretKey: k8s.DefaultSecretKey,
		PVC: opts.PVC, RunDir: mount, Worker: k8s.DefaultWorker, CPU: k8s.DefaultCPU, Memory: k8s.DefaultMemory,
	}
	text, err := k8s.Render(job)
	if err != nil {
		return usagef("%w", err)
	}
	dir := rundir.New(abs)
	path := dir.K8sJob()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	if err := safefile.Write(path, 0o644, func(w io.Writer) error {
		_, err := io.WriteString(w, text)
		return err
	}); err != nil {
		return fmt.Errorf("write the Job: %w", err)
	}
	ns := ""
	if opts.Namespace != "" {
		ns = " -n " + opts.Namespace
	}
	fmt.Fprintf(deps.Stdout, "wrote %s: an Indexed Job of %d pods (%d at a time) over %s\n", path, job.Completions, job.Parallelism, abs)
	fmt.Fprintf(deps.Stdout, "the run folder must be on the PersistentVolumeClaim %s, mounted in the pods at %s\n", opts.PVC, mount)
	fmt.Fprintf(deps.Stdout, "next:\n  kubectl%s create secret generic %s --from-env-file=<(printf '%s=%%s\\n' \"$OPENAI_API_KEY\")\n  kubectl%s apply -f %s\n  kubectl%s get job %s -w\n  coordinator merge --out %s   (when it has ended)\n",
		ns, opts.Secret, k8s.DefaultSecretKey, ns, path, ns, job.Name, opts.Out)
	return nil
}
