package main

import (
	"github.com/urfave/cli/v2"

	"github.com/trialcat/trialcat/internal/engine"
)

const catK8s = "Kubernetes"

func k8sCommand(e env) command {
	g := splitFirst()
	return command{
		Command: cli.Command{
			Name:      "k8s",
			Usage:     "write a split run as a Kubernetes Indexed Job (DIR/k8s/job.yaml) to apply with kubectl (with --input: split first)",
			UsageText: "coordinator k8s --out DIR --image IMG --pvc CLAIM [--parallelism K] [--namespace NS] [--secret NAME]",
			Description: "One completion index per batch; each pod runs worker --run-dir DIR, which reads JOB_COMPLETION_INDEX. The\n" +
				"run folder is the PersistentVolumeClaim, mounted in every pod at DIR's absolute path; the API key comes from\n" +
				"the Secret by secretKeyRef. Exit 3 (the API refused the run), 2 and 1 fail an index for good; crashes and\n" +
				"evictions are retried (backoffLimitPerIndex). Build the image with the Dockerfile.\n\n" +
				examples(
					"coordinator k8s --input trials.json --out /data/run1 --workers 40 --image registry.example/trialcat:1 --pvc runs",
					"kubectl apply -f /data/run1/k8s/job.yaml && coordinator status --out /data/run1",
					"coordinator merge --out /data/run1   # when the Job is complete"),
			Flags: append(withConfig(g.flags()),
				&cli.StringFlag{Name: "image", Category: catK8s, Usage: "container `IMAGE` holding the worker (see the Dockerfile)"},
				&cli.StringFlag{Name: "pvc", Category: catK8s, Usage: "the PersistentVolumeClaim `NAME` holding the run folder"},
				&cli.IntFlag{Name: "parallelism", Category: catK8s, DefaultText: "4, or fewer batches", Usage: "pods running at once; also the number of equal shares of --rpm/--tpm"},
				&cli.StringFlag{Name: "namespace", Category: catK8s, Usage: "the Job's `NAMESPACE`", DefaultText: "kubectl's"},
				&cli.StringFlag{Name: "secret", Category: catK8s, Value: "trialcat-openai", Usage: "the Secret `NAME` with the key OPENAI_API_KEY"},
				&cli.StringFlag{Name: "mount-path", Category: catK8s, Usage: "where the pods mount the run folder", DefaultText: "its absolute path here"},
			),
		},
		action: func(c *cli.Context) error {
			return engine.K8s(c.Context, engine.K8sOptions{
				Options: splitOptions(c, g), Image: c.String("image"), PVC: c.String("pvc"), Parallelism: c.Int("parallelism"),
				Namespace: c.String("namespace"), Secret: c.String("secret"), MountPath: c.String("mount-path"),
			}, e.deps())
		},
	}
}
