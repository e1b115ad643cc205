//go:build unix

package main

import (
	"fmt"
	"syscall"
	"time"
)

// threadCPU is the CPU time the calling thread has used (where the system
// has no per-thread figure, the process's: see rusageWho).
func threadCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageWho, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}
