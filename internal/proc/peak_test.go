package proc

import (
	"runtime"
	"testing"
)

func TestPeakRSSKBGrowsWithUse(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("VmHWM is Linux-only")
	}
	before := PeakRSSKB()
	if before <= 0 {
		t.Fatalf("PeakRSSKB = %d", before)
	}
	buf := make([]byte, 64<<20)
	for i := range buf {
		buf[i] = 1
	}
	after := PeakRSSKB()
	if after < before+60<<10 {
		t.Errorf("peak %d KiB after touching 64 MiB, was %d", after, before)
	}
	runtime.KeepAlive(buf)
}
