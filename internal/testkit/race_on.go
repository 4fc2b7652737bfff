//go:build race

package testkit

// Race is whether this test binary was built with the race detector (so the binaries it builds
// are too).
const Race = true
