package worker

import (
	"testing"

	"go.uber.org/goleak"
)

// A worker's goroutines (heartbeat, hedger, permit client, the coordinator watch) end with its
// batch: none may outlive the tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
