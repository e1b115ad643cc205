// Package host builds p2pd's libp2p host from a few options: identity,
// listen addresses, transports, connection gater, resource and connection
// managers, metrics, hole punching and NAT traversal. New returns a plain
// go-libp2p host.Host; this package adds no types of its own around it.
//
// It does not persist keys, parse flags, run the DHT, register stream
// handlers or install log handlers (go-libp2p logs through slog: main wires
// it to go-log with gologshim.SetDefaultHandler).
//
// # Stack
//
// TCP and QUIC v1 transports (both on by default, see Transports). Over TCP
// the security protocols are TLS 1.3 first and Noise second (TLS is faster
// with AES-NI; Noise forwarded 0.75x as fast in bench/), multiplexed by
// yamux; QUIC brings its own TLS 1.3 and streams. The TLS transport is
// go-libp2p's with one change: the records of one write (a yamux frame of up
// to 64 KiB makes four 16 KiB records) leave in one system call rather than
// one each, which halved the write calls of a forward and raised its
// single-connection throughput by about 1.5x (BENCHMARKS.md). The bytes on
// the wire are unchanged. yamux pings a TCP connection that has received
// nothing for KeepAliveInterval (10 s; go-libp2p's default is 30 s) and
// closes it when the answer takes more than 10 s, so the tunnels over a cut
// link end within about 20 s rather than 40 s. The circuit relay v2 client
// transport is on (see Relay), and so is hole punching (DCUtR, see
// HolePunching), which upgrades a relayed connection to a direct one. A
// dial ranker tries a peer's TCP addresses first and QUIC only
// QUICFallbackDelay later, so a peer with both ends up on TCP. That ranking governs only the connections this host dials: when a
// peer dials us over QUIC, the swarm happily opens streams on that
// connection too.
//
// # Resource limits
//
// go-libp2p's default resource manager allows 75 inbound streams per
// protocol and peer, about 632 per peer and about 4,000 in all (scaled to
// RAM), which breaks a forward carrying many connections to one peer. p2pd
// keeps go-libp2p's defaults, scaled to the machine and including its
// limits for libp2p's own services, and replaces the stream limits with
// fixed ones derived from one budget, P = MaxStreamsPerPeer (default
// DefaultMaxStreamsPerPeer = 16384), so that one forward can carry more
// than 10,000 concurrent streams to one peer on one protocol:
//
//	scope                  streams (in / out / total)   memory                      connections, FDs
//	system                 2P / 2P / 2P  (32768)        default + 2P x 256 KiB      default (scaled)
//	transient              P / P / P     (16384)        default                     default
//	each peer              P / P / P     (16384)        default + P x 256 KiB       default: 8 / 8 / 8
//	each protocol          2P / 2P / 2P  (32768)        default                     -
//	each protocol x peer   P / P / P     (16384)        default                     -
//	libp2p services        go-libp2p defaults (identify, ping, autonat, holepunch, relay)
//	each conn / stream     go-libp2p defaults
//
// Why these numbers:
//
//   - Stream counts are fixed rather than scaled to RAM because what they
//     must allow (a forward with 10,000 live client connections) does not
//     shrink on a small machine. The transient scope (streams not yet
//     assigned a protocol) is as large as a peer's budget so that a burst of
//     new streams is not reset while it negotiates. The price: one peer can
//     fill it, delaying other peers' new streams, though each stream leaves
//     it within the 10 s negotiation timeout.
//   - yamux reserves its initial 256 KiB receive window from the peer's
//     memory budget for every stream, before any data flows, so 10,000
//     streams account for 2.5 GiB. The memory limits are therefore the
//     defaults plus 256 KiB for every stream the counts admit: stream
//     counts, not that up-front reservation, are what bind. The memory is
//     only used when a stream's data is not read; lower MaxStreamsPerPeer on
//     small machines to bound that worst case.
//   - Connection counts stay at go-libp2p's scaled defaults (on a 23 GiB
//     machine: system 252 inbound / 504 outbound / 504 total, 8 per peer),
//     as do the per-IP limits (8 connections per IPv4 address; see
//     TrustedNetworks), so stream headroom does not buy connection headroom.
//
// QUIC connections cannot follow: quic-go admits at most 256 concurrent
// incoming streams per connection (hard-coded in go-libp2p's
// p2p/transport/quicreuse/config.go and not configurable). Further
// NewStream calls on such a connection wait, without failing, until a
// stream closes or their context ends. This is why tunnels prefer TCP.
//
// # Connection manager
//
// A real go-libp2p connection manager (h.ConnManager() is a
// *connmgr.BasicConnMgr): it trims to DefaultConnLow (160) connections when
// more than DefaultConnHigh (192) are open, sparing connections younger than
// DefaultConnGrace (1 minute) and protected peers. The streams registry
// protects peers that carry tunnels.
//
// # Metrics
//
// Off by default. PrometheusRegisterer(reg) registers go-libp2p's
// collectors (swarm, identify, event bus, AutoNAT, relay, hole punching,
// QUIC) with reg; the resource manager's only report with
// ResourceManagerMetrics too, as they cost CPU on every stream opened and
// closed. New itself never registers anything with
// prometheus.DefaultRegisterer: go-libp2p v0.51 registers its event bus
// collectors there even with libp2p.DisableMetrics(), so with metrics off
// New hands go-libp2p a private, never-exposed registry for them.
//
// The collectors are package-level variables inside go-libp2p: every host
// in a process updates the same counters, and every registry they are
// registered with shows the sum over all hosts (including the event bus
// counts of hosts whose metrics are off). The daemon runs one host per
// process, where this does not matter.
//
// # Listening
//
// New listens on each address separately, so that it can say which one
// failed. With addresses given through ListenAddrs every one must work;
// with the defaults one is enough (a machine without IPv6 still starts) and
// the others are logged as warnings.
package host

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	logging "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p"
	lphost "github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/autorelay"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
)

var log = logging.Logger("p2pd/host")

// ErrNoListener is returned (wrapped) by New when it could not listen on
// any of the default addresses.
var ErrNoListener = errors.New("could not listen on any address")

// New builds and starts a libp2p host as the options say, listening on its
// addresses before it returns. The caller owns the host and must Close it;
// Close also closes the resource and connection managers New made, and
// leaves no goroutine behind.
func New(opts ...Option) (lphost.Host, error) {
	c := defaultConfig()
	for _, opt := range opts {
		if err := opt(&c); err != nil {
			return nil, err
		}
	}
	if err := c.validate(); err != nil {
		return nil, err
	}

	rm, err := newResourceManager(&c)
	if err != nil {
		return nil, err
	}
	cm, err := connmgr.NewConnManager(c.connLow, c.connHigh, connmgr.WithGracePeriod(c.connGrace))
	if err != nil {
		rm.Close()
		return nil, fmt.Errorf("creating the connection manager: %w", err)
	}

	var relays relaySource
	lopts := []libp2p.Option{
		libp2p.NoListenAddrs, // New listens below, address by address
		libp2p.Security(libp2ptls.ID, c.tlsTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, muxer()),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.UserAgent(c.userAgent),
		libp2p.SwarmOpts(swarm.WithDialRanker(rankTCPFirst)),
	}
	if c.tcp {
		lopts = append(lopts, libp2p.Transport(tcp.NewTCPTransport))
	}
	if c.quic {
		lopts = append(lopts, libp2p.Transport(libp2pquic.NewTransport))
	}
	if c.identity != nil {
		lopts = append(lopts, libp2p.Identity(c.identity))
	}
	if c.gater != nil {
		lopts = append(lopts, libp2p.ConnectionGater(c.gater))
	}
	if c.registerer != nil {
		reg := c.registerer
		if !c.rcmgrMetrics {
			// go-libp2p registers the resource manager's collectors
			// whenever metrics are on; without reports they would show
			// zeros that look like real counts.
			reg = withoutCollectors{Registerer: reg, prefix: "libp2p_rcmgr_"}
		}
		lopts = append(lopts, libp2p.PrometheusRegisterer(reg))
	} else {
		// DisableMetrics alone still registers the event bus collectors
		// with prometheus.DefaultRegisterer; point them at a throw-away
		// registry first (the order matters: PrometheusRegisterer refuses
		// to follow DisableMetrics).
		lopts = append(lopts, libp2p.PrometheusRegisterer(prometheus.NewRegistry()), libp2p.DisableMetrics())
	}
	if c.relay {
		lopts = append(lopts, libp2p.EnableRelay())
	} else {
		lopts = append(lopts, libp2p.DisableRelay())
	}
	if c.natTraversal {
		lopts = append(lopts,
			libp2p.NATPortMap(),
			libp2p.EnableAutoRelayWithPeerSource(relays.candidates,
				autorelay.WithMinCandidates(1), autorelay.WithBootDelay(0)),
		)
	}
	if c.holePunching {
		var hopts []holepunch.Option
		if c.punchTracer != nil {
			hopts = append(hopts, holepunch.WithTracer(c.punchTracer))
		}
		lopts = append(lopts, libp2p.EnableHolePunching(hopts...))
	}
	if c.natService {
		lopts = append(lopts, libp2p.EnableNATService())
	}
	if len(c.announce) > 0 {
		lopts = append(lopts, libp2p.AddrsFactory(announcing(c.announce)))
	}
	switch c.reachability {
	case network.ReachabilityPublic:
		lopts = append(lopts, libp2p.ForceReachabilityPublic())
	case network.ReachabilityPrivate:
		lopts = append(lopts, libp2p.ForceReachabilityPrivate())
	}

	h, err := libp2p.New(lopts...)
	if err != nil {
		// Closing twice is harmless for both, and libp2p.New does not
		// always close what it was given when it fails.
		cm.Close()
		rm.Close()
		return nil, fmt.Errorf("creating the libp2p host: %w", err)
	}
	relays.host.Store(&h)

	if err := listen(h, &c); err != nil {
		h.Close()
		return nil, err
	}
	return h, nil
}

// listen makes h listen on c's addresses one by one, so that a failure can
// be attributed to its address.
func listen(h lphost.Host, c *config) error {
	addrs, strict := c.listenAddrs, true
	if !c.listenSet {
		addrs, strict = nil, false
		for _, a := range DefaultListenAddrs() {
			if c.enabled(transportOf(a)) {
				addrs = append(addrs, a)
			}
		}
	}
	// The swarm's Listen folds errors into one string; AddListenAddr, which
	// it calls per address, returns the transport's error as is.
	add := h.Network().Listen
	if s, ok := h.Network().(interface{ AddListenAddr(ma.Multiaddr) error }); ok {
		add = func(as ...ma.Multiaddr) error { return s.AddListenAddr(as[0]) }
	}
	var errs []error
	for _, a := range addrs {
		if err := add(a); err != nil {
			err = fmt.Errorf("listening on %s: %w", a, err)
			if strict {
				return err
			}
			errs = append(errs, err)
		}
	}
	if len(addrs) > 0 && len(errs) == len(addrs) {
		return fmt.Errorf("%w: %w", ErrNoListener, errors.Join(errs...))
	}
	for _, err := range errs {
		log.Warnw("skipping a default listen address", "err", err)
	}
	return nil
}

// announcing returns an address factory that adds extra to the host's own
// addresses, once each.
func announcing(extra []ma.Multiaddr) func([]ma.Multiaddr) []ma.Multiaddr {
	return func(addrs []ma.Multiaddr) []ma.Multiaddr {
		out := append(slices.Clone(addrs), extra...)
		return ma.Unique(out)
	}
}

// relaySource offers AutoRelay the host's connected peers as relay
// candidates; AutoRelay itself keeps those that run the relay service.
type relaySource struct {
	host atomic.Pointer[lphost.Host] // set once New has the host
}

// candidates implements autorelay.PeerSource. It sends what it has at once
// and closes the channel, so it needs no goroutine.
func (s *relaySource) candidates(_ context.Context, num int) <-chan peer.AddrInfo {
	hp := s.host.Load()
	if hp == nil || num <= 0 {
		ch := make(chan peer.AddrInfo)
		close(ch)
		return ch
	}
	h := *hp
	peers := h.Network().Peers()
	ch := make(chan peer.AddrInfo, min(num, len(peers)))
	for _, p := range peers {
		if len(ch) == cap(ch) {
			break
		}
		ch <- peer.AddrInfo{ID: p, Addrs: h.Peerstore().Addrs(p)}
	}
	close(ch)
	return ch
}

// KeepAliveInterval is how long a TCP connection may receive nothing
// before yamux pings the peer. yamux then waits up to 10 s for the answer
// (its write timeout) before it closes the connection and resets every
// stream on it, which is how the client of a tunnel over a cut link learns
// that the link is gone. The ping is a 12-byte frame each way, sent only on
// connections that are otherwise silent.
const KeepAliveInterval = 10 * time.Second

// muxer is go-libp2p's yamux configuration with p2pd's keepalive.
func muxer() *yamux.Transport {
	t := *yamux.DefaultTransport
	t.KeepAliveInterval = KeepAliveInterval
	return &t
}
