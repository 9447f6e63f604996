package sqlfetch

import (
	"syscall"
	"time"
)

// processCPU is the user+sys time of the process so far.
func processCPU() time.Duration { return rusage(syscall.RUSAGE_SELF) }

// threadCPU is the user+sys time of the calling thread so far (RUSAGE_THREAD).
func threadCPU() time.Duration { return rusage(1) }

func rusage(who int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
