//go:build unix

package daemon

import "syscall"

// ownerOnly is a net.ListenConfig.Control function that gives a unix
// socket mode 0600 before it is bound. On Linux the socket file that bind
// creates takes the socket's own mode (less the umask), so the API socket is
// never usable by others, not even for an instant, without changing the
// process-wide umask under the daemon's other goroutines. Other systems
// ignore the mode at bind; listenUnix sets it again once the file exists.
func ownerOnly(_, _ string, c syscall.RawConn) error {
	var err error
	if cerr := c.Control(func(fd uintptr) { err = syscall.Fchmod(int(fd), 0o600) }); cerr != nil {
		return cerr
	}
	return err
}
