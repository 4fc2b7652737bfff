// Package exitcode holds the sentinel errors that decide how the programs exit, and maps an error
// to its exit code. Mains call Code once; everything else wraps one of the sentinels with %w.
package exitcode
