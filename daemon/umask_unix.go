//go:build unix

package daemon

import "syscall"

// syscallUmask sets the process umask and returns the old one. It is used
// only around creating the API socket so the socket is never world-usable,
// even for an instant.
func syscallUmask(mask int) int { return syscall.Umask(mask) }
