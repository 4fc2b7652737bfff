// Package results reads and writes a worker's append-only CSV files: worker_N_results.csv (one row
// per record that succeeded) and worker_N_failures.csv (one row per record that failed).
//
// # Crash safety
//
// A Writer appends each row with a single write to the operating system, so a crash (or SIGKILL)
// loses at most the row being written, and may leave that row torn: a last line with no trailing
// newline, an unclosed quoted field or too few fields. OpenWriter truncates such a torn last line
// away before appending, and Read stops before it and reports it, so a torn row is never taken for
// a complete one. A damaged line in the middle of a file is not a crash artefact: Read and
// OpenWriter report it as an error naming the file and line.
//
// A file's first row is its header. OpenWriter refuses (with exitcode.ErrUsage) to append to a file
// whose header differs from the one asked for: such a file belongs to a different run (another
// schema or ID column), and mixing rows would corrupt both.
//
// Cells round-trip exactly, byte for byte: the reader is the package's own, because encoding/csv's
// reads a "\r\n" inside a quoted cell back as "\n", and an ID with one would never match its
// record again.
//
// # Spreadsheet formula guard
//
// SafeCell defends against CSV formula injection: spreadsheet programs run a cell that starts with
// '=', '+', '-' or '@' as a formula, and treat a leading tab or carriage return the same way, so a
// model answer such as "=HYPERLINK(...)" would run when a user opens the file. SafeCell prefixes
// such a cell with a single quote ('), which spreadsheets hide and which makes the cell plain text.
// A cell that is a plain decimal number ("-3", "+1.5", "-2.5e-3") is left alone so numbers stay
// numbers. The rule is applied once, when the final files are written (package merge): the
// worker files hold raw values, so IDs in them match the input exactly. SafeCell is idempotent.
package results
