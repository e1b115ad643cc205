package main

import "syscall"

// rusageWho selects the calling thread's usage.
const rusageWho = syscall.RUSAGE_THREAD
