//go:build windows

package daemon

import "syscall"

// ownerOnly does nothing on Windows, which has no file modes: the API
// socket file takes the access control list of its directory (the repo's,
// private to its user).
func ownerOnly(_, _ string, _ syscall.RawConn) error { return nil }
