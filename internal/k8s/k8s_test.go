package k8s

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the golden file")

func sampleJob() Job {
	return Job{
		Name: "trialcat-1a2b3c4d", Namespace: "research", Image: "registry.example/trialcat:1.0",
		Completions: 8, Parallelism: 3, RateShare: 3, BackoffLimitPerIndex: DefaultBackoff,
		Secret: DefaultSecret, SecretKey: DefaultSecretKey, PVC: "trials-run", RunDir: "/data/runs/registry",
		Worker: DefaultWorker, CPU: DefaultCPU, Memory: DefaultMemory,
	}
}

// TestManifestDecodesStrictly decodes the manifest into the official batch/v1 types, refusing
// any field they do not have, and checks what a run relies on.
func TestManifestDecodesStrictly(t *testing.T) {
	text, err := Render(sampleJob())
	if err != nil {
		t.Fatal(err)
	}
	var job batchv1.Job
	if err := yaml.UnmarshalStrict([]byte(text), &job); err != nil {
		t.Fatalf("strict decode into batch/v1 Job: %v\n%s", err, text)
	}
	spec := job.Spec
	if job.APIVersion != "batch/v1" || job.Kind != "Job" || job.Name != "trialcat-1a2b3c4d" || job.Namespace != "research" {
		t.Errorf("type and name: %s %s %s/%s", job.APIVersion, job.Kind, job.Namespace, job.Name)
	}
	if spec.CompletionMode == nil || *spec.CompletionMode != batchv1.IndexedCompletion {
		t.Errorf("completionMode = %v; want Indexed (the index is the batch)", spec.CompletionMode)
	}
	if *spec.Completions != 8 || *spec.Parallelism != 3 || *spec.BackoffLimitPerIndex != DefaultBackoff {
		t.Errorf("completions %d, parallelism %d, backoffLimitPerIndex %d", *spec.Completions, *spec.Parallelism, *spec.BackoffLimitPerIndex)
	}
	pod := spec.Template.Spec
	if pod.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("restartPolicy %q: a podFailurePolicy needs Never", pod.RestartPolicy)
	}
	// Exit 3 (the API refused the run) fails the index for good.
	rules := spec.PodFailurePolicy.Rules
	failsIndex := false
	for _, r := range rules {
		if r.Action == batchv1.PodFailurePolicyActionFailIndex && r.OnExitCodes != nil && *r.OnExitCodes.ContainerName == "worker" &&
			r.OnExitCodes.Operator == batchv1.PodFailurePolicyOnExitCodesOpIn {
			for _, v := range r.OnExitCodes.Values {
				failsIndex = failsIndex || v == 3
			}
		}
	}
	if !failsIndex {
		t.Errorf("no podFailurePolicy rule fails the index on exit 3: %+v", rules)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Containers))
	}
	c := pod.Containers[0]
	if strings.Join(c.Command, " ") != DefaultWorker || strings.Join(c.Args, " ") != "--run-dir /data/runs/registry --rate-share 3" {
		t.Errorf("command %v args %v", c.Command, c.Args)
	}
	var key *corev1.EnvVar
	for i, e := range c.Env {
		if e.Name == "OPENAI_API_KEY" {
			key = &c.Env[i]
		}
	}
	if key == nil || key.Value != "" || key.ValueFrom == nil || key.ValueFrom.SecretKeyRef == nil ||
		key.ValueFrom.SecretKeyRef.Name != DefaultSecret || key.ValueFrom.SecretKeyRef.Key != DefaultSecretKey {
		t.Errorf("OPENAI_API_KEY must come from the Secret by secretKeyRef, never a literal: %+v", key)
	}
	if len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != "/data/runs/registry" ||
		len(pod.Volumes) != 1 || pod.Volumes[0].PersistentVolumeClaim == nil || pod.Volumes[0].PersistentVolumeClaim.ClaimName != "trials-run" {
		t.Errorf("the run folder must be the PVC mounted at its own path: %+v %+v", c.VolumeMounts, pod.Volumes)
	}
	if sc := pod.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || *sc.RunAsUser != UID {
		t.Errorf("the pod must run as the image's non-root user: %+v", pod.SecurityContext)
	}

	golden := filepath.Join("testdata", "job.golden.yaml")
	if *update {
		if err := os.WriteFile(golden, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if text != string(want) {
		t.Errorf("the manifest differs from %s (run go test ./internal/k8s -update after a deliberate change):\n%s", golden, text)
	}
}

func TestManifestRefusesWhatAClusterWould(t *testing.T) {
	for name, mutate := range map[string]func(*Job){
		"no image":        func(j *Job) { j.Image = "" },
		"no pvc":          func(j *Job) { j.PVC = "" },
		"bad secret name": func(j *Job) { j.Secret = "My_Secret" },
		"bad namespace":   func(j *Job) { j.Namespace = "Research Lab" },
		"relative mount":  func(j *Job) { j.RunDir = "runs/a" },
		"no parallelism":  func(j *Job) { j.Parallelism = 0 },
	} {
		j := sampleJob()
		mutate(&j)
		if _, err := Render(j); err == nil {
			t.Errorf("%s: rendered", name)
		}
	}
}
