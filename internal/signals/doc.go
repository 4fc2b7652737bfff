// Package signals turns SIGINT and SIGTERM into context cancellation: the first signal cancels
// the context (stop gracefully), the second closes a hard-stop channel (stop at once).
package signals
