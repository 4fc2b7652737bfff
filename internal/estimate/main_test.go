package estimate

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a counting goroutine outlives its run.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
