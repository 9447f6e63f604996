//go:build !linux

package sqlfetch

import "time"

// processCPU and threadCPU are not measured here: the benchmark reports 0.
func processCPU() time.Duration { return 0 }
func threadCPU() time.Duration  { return 0 }
