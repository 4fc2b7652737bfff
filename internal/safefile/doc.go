// Package safefile writes whole files atomically, so a crash or an error never leaves a half-written
// file that looks complete under the final name.
//
// Write creates a temporary file ".name.tmp-*" in the destination's own directory (so the final
// rename never crosses a file system), writes through a buffer, then flushes, fsyncs, closes,
// sets the permissions, renames the temporary file over the destination and fsyncs the directory
// so the rename itself survives a power cut. On any error, or a panic in the caller's write
// function, the temporary file is removed and an existing destination is left untouched. This is
// the discipline of restic's local backend (internal/backend/local).
package safefile
