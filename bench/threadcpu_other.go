//go:build unix && !linux

package main

import "syscall"

// rusageWho selects the whole process's usage: this system has no
// per-thread figure, so the cipher measurement includes every thread's.
const rusageWho = syscall.RUSAGE_SELF
