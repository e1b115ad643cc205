//go:build unix && !linux

package childproc

import "syscall"

// Attr returns the attributes for a child process: with group its own
// process group. This system cannot kill a child when its parent dies, so a
// parent that crashes may leave it running.
func Attr(group bool) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: group}
}
