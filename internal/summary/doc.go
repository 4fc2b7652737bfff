// Package summary defines summary.json, the record of how a run ended: its status, counts,
// tokens, cost and timings, and one line per batch's worker. The coordinator writes it; the
// report and scripts read it.
package summary
