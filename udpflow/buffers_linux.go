package udpflow

import (
	"net"
	"syscall"
)

// forceBuffers raises c's buffers to n past net.core.rmem_max and wmem_max
// where the process may (CAP_NET_ADMIN: SO_RCVBUFFORCE, SO_SNDBUFFORCE), as
// quic-go does for its own sockets. Elsewhere the kernel's cap stands.
func forceBuffers(c *net.UDPConn, n int) {
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		for _, o := range [...]struct{ get, force int }{
			{syscall.SO_RCVBUF, syscall.SO_RCVBUFFORCE},
			{syscall.SO_SNDBUF, syscall.SO_SNDBUFFORCE},
		} {
			// Linux reports twice the size that was set (the rest is its
			// bookkeeping), so a granted request reads as 2n.
			if got, err := syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, o.get); err == nil && got >= n {
				continue
			}
			if err := syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, o.force, n); err != nil {
				log.Debugw("UDP socket buffer capped by the system", "addr", c.LocalAddr(), "want", n, "err", err)
			}
		}
	})
}
