package listeners

import (
	"net"
	"net/netip"
	"time"
)

// keepAlive is the TCP keep-alive period for local connections on network
// netw at addr (a "host:port"): none on loopback, Go's default elsewhere.
//
// A peer on loopback cannot vanish without its kernel, which is ours,
// closing or resetting the connection, so probes there find nothing. Turning
// them on costs four setsockopt calls on every accepted or dialled
// connection, on the way of its first byte. Elsewhere they are what frees
// the connection of a client that lost power or its link.
func keepAlive(netw, addr string) time.Duration {
	if netw != "tcp" && netw != "tcp4" && netw != "tcp6" {
		return 0 // unix sockets have none anyway
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.Unmap().IsLoopback() {
		return -1
	}
	return 0
}
