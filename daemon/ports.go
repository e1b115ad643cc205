package daemon

import (
	"errors"
	"fmt"
	"net"
	"syscall"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// checkPortsFree refuses to start when a listen address's fixed port is
// already taken. go-libp2p binds TCP with SO_REUSEPORT, so without this
// check a second daemon on the same port starts "successfully" and the
// kernel splits incoming connections between the two, and half the peers
// dialling this node reach the wrong identity. Each address is bound once
// without SO_REUSEPORT and released at once. Ports 0 and addresses that
// cannot be bound here at all (no IPv6, not a local address) are left to
// the host, which reports them.
func checkPortsFree(addrs []ma.Multiaddr) error {
	for _, a := range addrs {
		network, hostport, err := probeArgs(a)
		if err != nil {
			continue
		}
		var closer interface{ Close() error }
		switch network {
		case "tcp4", "tcp6":
			closer, err = net.Listen(network, hostport)
		case "udp4", "udp6":
			closer, err = net.ListenPacket(network, hostport)
		default:
			continue
		}
		if err == nil {
			closer.Close()
			continue
		}
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("listen address %s is already in use (is another p2pd daemon running on it? pick another port with --listen, or port 0 for any)", a)
		}
	}
	return nil
}

// probeArgs returns the socket network and address of a TCP or QUIC listen
// multiaddr with a fixed port.
func probeArgs(a ma.Multiaddr) (network, hostport string, err error) {
	// Keep the IP and transport part: /ip4/x/udp/p/quic-v1 -> /ip4/x/udp/p.
	var base ma.Multiaddr
	for i, c := range a {
		if c.Protocol().Code == ma.P_TCP || c.Protocol().Code == ma.P_UDP {
			base = a[:i+1]
			if c.Value() == "0" {
				return "", "", errors.New("port 0")
			}
			break
		}
	}
	if base == nil {
		return "", "", errors.New("not tcp or udp")
	}
	return manet.DialArgs(base)
}
