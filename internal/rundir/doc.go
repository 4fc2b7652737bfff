// Package rundir names every file of a run folder, the --out of a run, and is the only place
// those names are spelled. The coordinator, the workers, merge, status, the report, the
// benchmarks and the scale-out engines all ask a Dir for paths instead of building them.
//
// A run folder holds:
//
//	run.json                   the run's settings and batch plan (package runspec); written last
//	                           when the batch files are ready, so its presence marks a run
//	batch_N.json               the records of batch N (package batch)
//	worker_N_results.csv       one row per answered record, appended by the worker of batch N
//	worker_N_failures.csv      one row per record that failed for good
//	worker_N_log.txt           the worker's JSON-lines log
//	worker_N_attempts.log      one line per attempt, written before the request is sent
//	worker_N_batchapi.json     the Batch API backend's input files and batches of worker N
//	worker_N_part_K.jsonl      worker N's K-th Batch API input file
//	.lock                      held (flock) by a coordinator for its whole run
//	.batch_N.lock              held (flock) by the worker working on batch N
//	.merging                   present while the two final files are being replaced
//	final_results.csv          the merged results, in input order
//	final_failures.csv         the merged failures
//	results.jsonl              each answered record as one JSON line, as the coordinator learns of it
//	summary.json               how the run ended (package summary)
//	report.html                the run as one self-contained page (package report)
//	previous-<time>/           files of an earlier run moved aside by --fresh or a retry
//	limits.json                the address and token of a running limit server (mode 0600)
//	.limits.lock               held (flock) by that limit server
//	slurm/array.sbatch         the Slurm job array's batch script (coordinator slurm)
//	slurm/jobs.json            the job ID of every submission
//	slurm/task_N.log           the output of the Slurm task of batch N
//	k8s/job.yaml               the Kubernetes Indexed Job (coordinator k8s)
//	export/batch_N.jsonl       batch N's requests in the Batch API's input format (coordinator export)
//
// Files that must be whole are written through a temporary ".<name>.tmp-*" in the same folder
// and renamed into place; IsTemp recognises those leftovers.
package rundir
