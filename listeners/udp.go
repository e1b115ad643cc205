package listeners

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/p2pd/p2pd/udpflow"
)

// UDP tunnels: a forward or listen whose local address is /udp/ carries
// datagrams (package udpflow). A UDP forward's socket is a net.Listener whose
// connections are flows, one per client; a UDP listen dials one socket per
// flow. Everything else (the registry, streams, allow-peer, close, hooks) is
// shared with TCP. The streams speak udpflow.WireProtocol(PROTOCOL), so a TCP
// forward never reaches a UDP listen nor the reverse.

// WithUDPIdleTimeout sets how long a UDP flow may be silent both ways before
// it is closed (udpflow.DefaultIdleTimeout otherwise). It must be positive.
func WithUDPIdleTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return errors.New("UDP idle timeout must be positive")
		}
		c.udpIdleTimeout = d
		return nil
	}
}

// isUDP tells a UDP network name (from manet.DialArgs) from TCP and unix.
func isUDP(netw string) bool {
	return strings.HasPrefix(netw, "udp")
}

// wireProtocol is the protocol an entry's streams speak on network netw.
func wireProtocol(p protocol.ID, netw string) protocol.ID {
	if isUDP(netw) {
		return udpflow.WireProtocol(p)
	}
	return p
}

// checkUDPAddr refuses a UDP multiaddr with anything after /udp/PORT (such
// as /quic-v1): a tunnel's local side is plain UDP.
func checkUDPAddr(a ma.Multiaddr) error {
	if len(a) == 0 || a[len(a)-1].Code() != ma.P_UDP {
		return errors.New("a UDP address must end with /udp/PORT")
	}
	return nil
}

// udpOptions are the options of the flows of entry e: its idle timeout, and
// its LastError for the local troubles that cost datagrams.
func (r *Registry) udpOptions(e *entry) []udpflow.Option {
	opts := []udpflow.Option{udpflow.WithErrorHook(func(err error) { r.recordError(e, err) })}
	if r.cfg.udpIdleTimeout > 0 {
		opts = append(opts, udpflow.WithIdleTimeout(r.cfg.udpIdleTimeout))
	}
	return opts
}

// listenLocal binds the local side of forward e: a TCP or unix listener, or
// a UDP socket whose connections are flows.
func (r *Registry) listenLocal(ctx context.Context, e *entry, netw, addr string) (net.Listener, error) {
	if isUDP(netw) {
		return udpflow.Listen(ctx, netw, addr, r.udpOptions(e)...)
	}
	lc := net.ListenConfig{KeepAlive: keepAlive(netw, addr)}
	return lc.Listen(ctx, netw, addr)
}

// dialLocal dials the target of listen e for one stream: a TCP or unix
// connection, or a UDP flow from a socket of its own.
func (r *Registry) dialLocal(ctx context.Context, e *entry) (net.Conn, error) {
	if isUDP(e.network) {
		return udpflow.Dial(ctx, e.network, e.address, r.udpOptions(e)...)
	}
	d := net.Dialer{KeepAlive: keepAlive(e.network, e.address)}
	return d.DialContext(ctx, e.network, e.address)
}

// explainTransport adds to a failed stream opening of forward e the reason
// when the peer serves e's protocol over the other transport (a TCP forward
// to a UDP listen or the reverse), as far as the peerstore knows.
func (r *Registry) explainTransport(e *entry, err error) error {
	udp := e.wire != e.info.Protocol
	other, has, wants := udpflow.WireProtocol(e.info.Protocol), "UDP", "TCP"
	if udp {
		other, has, wants = e.info.Protocol, "TCP", "UDP"
	}
	if got, perr := r.h.Peerstore().SupportsProtocols(e.peer, other); perr != nil || len(got) == 0 {
		return err
	}
	return fmt.Errorf("%w: the peer serves %s over %s, this forward is %s (%w)",
		ErrTransportMismatch, e.info.Protocol, has, wants, err)
}
