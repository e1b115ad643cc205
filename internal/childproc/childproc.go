// Package childproc gives the process attributes that tests and the bench
// harness start their child processes with, on each system: the child is
// killed by the kernel when its parent dies (where the system can do that),
// and optionally runs in its own process group so it can be killed as one.
package childproc
