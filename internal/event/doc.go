// Package event is the line protocol between a worker and its coordinator. A worker started with
// --events writes one JSON object per line to its stdout for each thing the coordinator tracks
// live (a record answered or failed, a retry, the worker's start and end); the coordinator reads
// them for progress, usage and cost. Stderr stays the worker's human/JSON log.
package event
