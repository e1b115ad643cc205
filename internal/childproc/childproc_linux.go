//go:build linux

package childproc

import "syscall"

// Attr returns the attributes for a child process: SIGKILL when the parent
// thread dies, and with group its own process group.
func Attr(group bool) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: group, Pdeathsig: syscall.SIGKILL}
}
