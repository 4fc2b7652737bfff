package coordinator

import "syscall"

// selfMaxRSSKB is this process's peak resident set size in KiB (Linux reports ru_maxrss in KiB).
func selfMaxRSSKB() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return int64(ru.Maxrss)
}
