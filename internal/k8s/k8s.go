// Package k8s writes a split run as a Kubernetes Indexed Job: one completion index per batch,
// each pod running `worker --run-dir DIR`, which reads its batch number from
// JOB_COMPLETION_INDEX. The manifest is plain YAML with comments, for a user to read, edit and
// apply with kubectl; nothing here talks to a cluster.
package k8s

import (
	"fmt"
	"regexp"
	"strings"
	"text/template"

	"github.com/trialcat/trialcat/internal/exitcode"
)

// Job is what the manifest says.
type Job struct {
	Name      string // the Job's name (a DNS label)
	Namespace string // "" for the kubectl context's
	Image     string
	// Completions is the number of batches; Parallelism the pods running at once.
	Completions, Parallelism int
	// RateShare is the number of pods sharing the run's rate limit (the worker's --rate-share);
	// 0 when the run has no limit.
	RateShare int
	// BackoffLimitPerIndex is how often a batch's pod is retried after a failure that may pass
	// (a crash, an eviction's SIGTERM, a full disk).
	BackoffLimitPerIndex int
	Secret               string // the Secret holding OPENAI_API_KEY
	SecretKey            string // its key in the Secret
	PVC                  string // the PersistentVolumeClaim holding the run folder
	RunDir               string // where the run folder is mounted in the pod: its path where it was split
	Worker               string // the worker binary's path in the image
	CPU, Memory          string // each pod's requests
}

// Defaults of a manifest.
const (
	DefaultSecret      = "trialcat-openai"
	DefaultSecretKey   = "OPENAI_API_KEY"
	DefaultWorker      = "/usr/local/bin/worker"
	DefaultBackoff     = 3
	DefaultCPU         = "250m"
	DefaultMemory      = "256Mi"
	DefaultParallelism = 4
	// UID is the non-root user of the image (the Dockerfile's).
	UID = 65532
)

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// Check refuses what a cluster would refuse, with the flag to fix.
func (j Job) Check() error {
	switch {
	case j.Image == "":
		return fmt.Errorf("--image is required: the container image with the worker (see the Dockerfile)")
	case strings.ContainsAny(j.Image, " \t\n\"'"):
		return fmt.Errorf("--image %q: not an image reference", j.Image)
	case j.PVC == "":
		return fmt.Errorf("--pvc is required: the PersistentVolumeClaim that holds the run folder, mounted in every pod at %s", j.RunDir)
	case !dnsLabel.MatchString(j.PVC):
		return fmt.Errorf("--pvc %q: not a valid claim name (lower-case letters, digits and -)", j.PVC)
	case !dnsLabel.MatchString(j.Secret):
		return fmt.Errorf("--secret %q: not a valid Secret name (lower-case letters, digits and -)", j.Secret)
	case j.Namespace != "" && !dnsLabel.MatchString(j.Namespace):
		return fmt.Errorf("--namespace %q: not a valid namespace", j.Namespace)
	case j.Completions < 1:
		return fmt.Errorf("the run has no batches")
	case j.Parallelism < 1:
		return fmt.Errorf("--parallelism %d: need at least 1 pod at a time", j.Parallelism)
	case !strings.HasPrefix(j.RunDir, "/") || strings.ContainsAny(j.RunDir, "\n\"\\"):
		return fmt.Errorf("the run folder's path %q cannot be a mount path", j.RunDir)
	}
	return nil
}

var tmpl = template.Must(template.New("job").Parse(`# A Kubernetes Indexed Job over the run in {{.RunDir}}: one completion index per batch, each
# pod running the worker over batch_<index>.json (the index is JOB_COMPLETION_INDEX).
# Written by "coordinator k8s"; edit it freely, then
#   kubectl apply -f job.yaml
#   kubectl get job {{.Name}} -w        (progress: coordinator status --out {{.RunDir}})
#   coordinator merge --out {{.RunDir}}   (when the Job has ended)
# The API key comes from the Secret {{.Secret}} (key {{.SecretKey}}), never from this file.
# Create it without the key reaching argv or your shell history:
#   kubectl create secret generic {{.Secret}} --from-env-file=<(printf '{{.SecretKey}}=%s\n' "$OPENAI_API_KEY")
apiVersion: batch/v1
kind: Job
metadata:
  name: {{.Name}}
{{- if .Namespace}}
  namespace: {{.Namespace}}
{{- end}}
  labels:
    app.kubernetes.io/name: trialcat
    app.kubernetes.io/component: worker
spec:
  completionMode: Indexed
  completions: {{.Completions}}
  parallelism: {{.Parallelism}}
  # A batch whose pod failed in a way that may pass (a crash, an eviction, a full disk) is
  # retried this often; the worker resumes where its files end.
  backoffLimitPerIndex: {{.BackoffLimitPerIndex}}
  podFailurePolicy:
    rules:
      # The worker's exit codes that retrying the same pod cannot fix: 1 some records failed
      # for good (a rerun after a merge retries them), 2 a usage error or another worker holds
      # the batch, 3 the API refused the run (a bad key, no quota, an unreachable server).
      - action: FailIndex
        onExitCodes:
          containerName: worker
          operator: In
          values: [{{.ExitRecordsFailed}}, {{.ExitUsage}}, {{.ExitFatalAPI}}]
      # A pod stopped by the cluster (preemption, a drained node) does not count as a failure.
      - action: Ignore
        onPodConditions:
          - type: DisruptionTarget
  template:
    metadata:
      labels:
        app.kubernetes.io/name: trialcat
        app.kubernetes.io/component: worker
    spec:
      restartPolicy: Never
      # The worker stops on SIGTERM within its grace: it finishes no new request and keeps
      # every answer it has.
      terminationGracePeriodSeconds: 30
      securityContext:
        runAsNonRoot: true
        runAsUser: {{.UID}}
        runAsGroup: {{.UID}}
        fsGroup: {{.UID}}
      containers:
        - name: worker
          image: {{.Image}}
          command: ["{{.Worker}}"]
          args: ["--run-dir", "{{.RunDir}}"{{if .RateShare}}, "--rate-share", "{{.RateShare}}"{{end}}]
          env:
            - name: OPENAI_API_KEY
              valueFrom:
                secretKeyRef:
                  name: {{.Secret}}
                  key: {{.SecretKey}}
          resources:
            requests:
              cpu: "{{.CPU}}"
              memory: "{{.Memory}}"
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: ["ALL"]
          volumeMounts:
            - name: run
              mountPath: "{{.RunDir}}"
      volumes:
        - name: run
          persistentVolumeClaim:
            claimName: {{.PVC}}
`))

// Render returns the manifest.
func Render(j Job) (string, error) {
	if err := j.Check(); err != nil {
		return "", err
	}
	var b strings.Builder
	err := tmpl.Execute(&b, struct {
		Job
		UID                                        int
		ExitRecordsFailed, ExitUsage, ExitFatalAPI int
	}{j, UID, exitcode.Failed, exitcode.Usage, exitcode.FatalAPI})
	if err != nil {
		return "", fmt.Errorf("render the Job: %w", err)
	}
	return b.String(), nil
}
