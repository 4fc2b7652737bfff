// Package signals turns SIGINT, SIGTERM and SIGHUP into context cancellation: the first signal cancels
// the context (stop gracefully), the second closes a hard-stop channel (stop at once). A closed
// stdout or stderr makes writes fail (EPIPE) rather than killing the process with SIGPIPE.
package signals
