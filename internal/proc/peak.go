package proc

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// PeakRSSKB returns this process's peak resident set size in KiB from /proc/self/status
// (VmHWM), or 0 where that is not available. getrusage's ru_maxrss is not used: on Linux it also
// counts the parent's size at the fork, since exec folds the old address space's high-water mark
// into it, so a worker started by a large coordinator would report the coordinator's size.
func PeakRSSKB() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return n
		}
	}
	return 0
}
