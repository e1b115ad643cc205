package host

import (
	"errors"
	"fmt"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	"net/netip"
	"time"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/p2pd/p2pd/version"
	"github.com/prometheus/client_golang/prometheus"
)

// Transport names a libp2p transport New can enable.
type Transport string

// The transports New knows. Both are enabled by default.
const (
	// TCP is TCP with TLS 1.3 (preferred) or Noise, and yamux.
	TCP Transport = "tcp"
	// QUIC is QUIC v1 (/udp/PORT/quic-v1), which brings its own TLS 1.3 and
	// stream multiplexing, capped at 256 concurrent incoming streams per
	// connection.
	QUIC Transport = "quic"
)

// Defaults New uses when no option says otherwise.
const (
	// DefaultConnLow is the connection manager's low water mark: trimming
	// stops once this many connections remain.
	DefaultConnLow = 160
	// DefaultConnHigh is the connection manager's high water mark: above
	// this many connections it trims down to DefaultConnLow, sparing
	// protected peers (the streams registry protects peers with tunnels).
	DefaultConnHigh = 192
	// DefaultConnGrace is how long a new connection is exempt from trimming.
	DefaultConnGrace = time.Minute
	// DefaultMaxStreamsPerPeer is the resource manager's stream budget per
	// peer (and per protocol and peer); see the package documentation.
	DefaultMaxStreamsPerPeer = 16384
)

// DefaultListenAddrs are the addresses New listens on without ListenAddrs:
// port 4001 on every IPv4 and IPv6 address, over TCP and QUIC. Those of a
// disabled transport are dropped.
func DefaultListenAddrs() []ma.Multiaddr {
	return []ma.Multiaddr{
		ma.StringCast("/ip4/0.0.0.0/tcp/4001"),
		ma.StringCast("/ip4/0.0.0.0/udp/4001/quic-v1"),
		ma.StringCast("/ip6/::/tcp/4001"),
		ma.StringCast("/ip6/::/udp/4001/quic-v1"),
	}
}

// config is what the options of New fill in.
type config struct {
	identity     crypto.PrivKey
	listenAddrs  []ma.Multiaddr
	listenSet    bool // ListenAddrs was given, possibly with no address
	tcp, quic    bool
	gater        connmgr.ConnectionGater
	userAgent    string
	registerer   prometheus.Registerer
	rcmgrMetrics bool
	connLow      int
	connHigh     int
	connGrace    time.Duration
	trusted      []netip.Prefix
	natTraversal bool
	holePunching bool
	punchTracer  holepunch.EventTracer
	natService   bool
	announce     []ma.Multiaddr
	relay        bool
	reachability network.Reachability
	maxStreams   int
	tlsTransport any             // constructor of the TLS security transport, as libp2p.Security takes
	seen         map[string]bool // names of the single-valued options given so far
}

func defaultConfig() config {
	return config{
		tcp:          true,
		quic:         true,
		userAgent:    version.UserAgent(),
		connLow:      DefaultConnLow,
		connHigh:     DefaultConnHigh,
		connGrace:    DefaultConnGrace,
		relay:        true,
		holePunching: true,
		reachability: network.ReachabilityUnknown,
		maxStreams:   DefaultMaxStreamsPerPeer,
		tlsTransport: libp2ptls.New,
	}
}

// Option configures New. Options check their own arguments; New rejects
// combinations that contradict each other. Each option may be given once,
// except ListenAddrs and TrustedNetworks, whose arguments add up.
type Option func(*config) error

// once records that the single-valued option name was given, and fails if
// it was given before.
func (c *config) once(name string) error {
	if c.seen[name] {
		return fmt.Errorf("%s given more than once", name)
	}
	if c.seen == nil {
		c.seen = make(map[string]bool)
	}
	c.seen[name] = true
	return nil
}

// Identity sets the host's private key, which determines its peer ID.
// Without it New generates a random Ed25519 key, so the peer ID changes on
// every start; the daemon passes the key from its repo.
func Identity(sk crypto.PrivKey) Option {
	return func(c *config) error {
		if sk == nil {
			return errors.New("identity: no private key given")
		}
		if err := c.once("identity"); err != nil {
			return err
		}
		c.identity = sk
		return nil
	}
}

// ListenAddrs sets the addresses to listen on, replacing
// DefaultListenAddrs. Port 0 picks a free port. Given with no address at
// all, the host listens nowhere and can only dial out. Every address must
// belong to an enabled transport, and New fails unless it can listen on
// every one of them (with the defaults, it is enough that one works, so a
// machine without IPv6 still starts).
func ListenAddrs(addrs ...ma.Multiaddr) Option {
	return func(c *config) error {
		for _, a := range addrs {
			if len(a) == 0 {
				return errors.New("listen address: empty multiaddr")
			}
			if transportOf(a) == "" {
				return fmt.Errorf("listen address %s: not a TCP (/tcp/PORT) or QUIC (/udp/PORT/quic-v1) address", a)
			}
		}
		c.listenSet = true
		c.listenAddrs = append(c.listenAddrs, addrs...)
		return nil
	}
}

// Transports enables exactly the given transports (by default both TCP and
// QUIC).
func Transports(ts ...Transport) Option {
	return func(c *config) error {
		if err := c.once("transports"); err != nil {
			return err
		}
		if len(ts) == 0 {
			return errors.New("transports: at least one transport is needed")
		}
		c.tcp, c.quic = false, false
		for _, t := range ts {
			switch t {
			case TCP:
				c.tcp = true
			case QUIC:
				c.quic = true
			default:
				return fmt.Errorf("transports: unknown transport %q (known: %q, %q)", t, TCP, QUIC)
			}
		}
		return nil
	}
}

// ConnectionGater installs g (for example a *filters.Filters) to vet every
// dial and every inbound connection. There is none by default.
func ConnectionGater(g connmgr.ConnectionGater) Option {
	return func(c *config) error {
		if g == nil {
			return errors.New("connection gater: nil gater")
		}
		if err := c.once("connection gater"); err != nil {
			return err
		}
		c.gater = g
		return nil
	}
}

// UserAgent sets the agent string announced through identify; the default
// is version.UserAgent().
func UserAgent(ua string) Option {
	return func(c *config) error {
		if err := c.once("user agent"); err != nil {
			return err
		}
		if ua == "" {
			return errors.New("user agent: empty string")
		}
		c.userAgent = ua
		return nil
	}
}

// PrometheusRegisterer turns go-libp2p's metrics on and registers its
// collectors with reg. Without it metrics are off and nothing is ever
// registered with prometheus.DefaultRegisterer. See the package
// documentation for what go-libp2p's package-level collectors mean when
// several hosts share a process.
func PrometheusRegisterer(reg prometheus.Registerer) Option {
	return func(c *config) error {
		if reg == nil {
			return errors.New("prometheus registerer: nil registerer")
		}
		if err := c.once("prometheus registerer"); err != nil {
			return err
		}
		c.registerer = reg
		return nil
	}
}

// ResourceManagerMetrics makes the resource manager report every stream,
// connection and memory event to its Prometheus collectors (libp2p_rcmgr_*,
// among them the count of blocked resources), which needs
// PrometheusRegisterer. It is off by default, even with metrics on, because
// it is not free: go-libp2p formats a timestamp and updates several
// labelled gauges for each event, 8% of a forwarding daemon's CPU under a
// load of new connections (CPU profile) and 1.07x the CPU per forwarded
// connection with it on (bench/, -compare). When a limit is hit the dial or
// stream error says so anyway.
func ResourceManagerMetrics(enable bool) Option {
	return func(c *config) error {
		if err := c.once("resource manager metrics"); err != nil {
			return err
		}
		c.rcmgrMetrics = enable
		return nil
	}
}

// ConnManager sets the connection manager's water marks and grace period:
// above high connections it closes the least useful unprotected ones until
// low remain, sparing connections younger than grace. Defaults:
// DefaultConnLow, DefaultConnHigh, DefaultConnGrace.
func ConnManager(low, high int, grace time.Duration) Option {
	return func(c *config) error {
		if err := c.once("connection manager"); err != nil {
			return err
		}
		switch {
		case low < 0:
			return fmt.Errorf("connection manager: low water mark %d is negative", low)
		case high < 1:
			return fmt.Errorf("connection manager: high water mark %d must be at least 1", high)
		case low > high:
			return fmt.Errorf("connection manager: low water mark %d is above the high water mark %d", low, high)
		case grace < 0:
			return fmt.Errorf("connection manager: grace period %v is negative", grace)
		}
		c.connLow, c.connHigh, c.connGrace = low, high, grace
		return nil
	}
}

// TrustedNetworks lifts the resource manager's per-IP connection count
// limits (8 per IPv4 address; 8 per IPv6 /56 and 64 per /48) and connection
// rate limits (0.2/s with a burst of 16 per IPv4 address or IPv6 /56) for peers inside these ranges, as they already are for
// loopback. Use it when many nodes share one address: network-namespace
// testbeds, a NAT, containers behind one bridge IP. Other limits still apply.
func TrustedNetworks(prefixes ...netip.Prefix) Option {
	return func(c *config) error {
		for _, p := range prefixes {
			if !p.IsValid() {
				return errors.New("trusted networks: the zero prefix is not a range")
			}
			p = p.Masked()
			if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
				p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
			}
			c.trusted = append(c.trusted, p)
		}
		return nil
	}
}

// NATTraversal turns on, together, the features that help peers behind NATs
// find a way in without configured relays (default off):
//
//   - NAT port mapping (UPnP / NAT-PMP): needs a router that offers it.
//   - AutoRelay: when AutoNAT finds the host unreachable (it only tests
//     public addresses), it reserves slots on relays among the connected
//     peers that run the relay v2 service, and announces /p2p-circuit
//     addresses through them. Circuits are only built from the relays'
//     public addresses. It waits for one candidate, not go-libp2p's four,
//     and without its three-minute boot delay.
//
// Hole punching is HolePunching's, on by default. None of it does anything
// useful on loopback or private testbeds. It requires the relay transport
// (Relay(false) contradicts it). The daemon keeps reservations on
// configured relays itself (package nat) and does not use it.
func NATTraversal(enable bool) Option {
	return func(c *config) error {
		if err := c.once("NAT traversal"); err != nil {
			return err
		}
		c.natTraversal = enable
		return nil
	}
}

// HolePunching enables (the default) or disables DCUtR, which turns a
// relayed connection into a direct one by having both peers dial each other
// at once. Both peers need it. It starts on a host only once a public peer
// has observed one of its public addresses (identify); go-libp2p polls for
// that at 0, 0.25, 0.75, 1.75, 3.75, 7.75 s and then every 5 s. TCP punching
// needs SO_REUSEPORT (it is off with LIBP2P_TCP_REUSEPORT=false).
func HolePunching(enable bool) Option {
	return func(c *config) error {
		if err := c.once("hole punching"); err != nil {
			return err
		}
		c.holePunching = enable
		return nil
	}
}

// HolePunchTracer has t told of every hole punching step (attempts,
// results, direct dials); see nat.PunchTracker. It needs HolePunching.
func HolePunchTracer(t holepunch.EventTracer) Option {
	return func(c *config) error {
		if t == nil {
			return errors.New("hole punch tracer: nil tracer")
		}
		if err := c.once("hole punch tracer"); err != nil {
			return err
		}
		c.punchTracer = t
		return nil
	}
}

// NATService runs the AutoNAT service (default off): peers ask this host
// to dial them back, and so learn whether they are reachable. Only useful
// on a host with a public address (AutoNAT clients ignore others); relays
// run it.
func NATService(enable bool) Option {
	return func(c *config) error {
		if err := c.once("NAT service"); err != nil {
			return err
		}
		c.natService = enable
		return nil
	}
}

// AnnounceAddrs adds addresses the host announces (identify, the DHT,
// circuit addresses built by peers it relays for) besides the ones it
// finds itself: a public address that is not on any interface, such as
// that of a cloud VM behind a 1:1 NAT. Each must be a TCP or QUIC address
// without /p2p.
func AnnounceAddrs(addrs ...ma.Multiaddr) Option {
	return func(c *config) error {
		for _, a := range addrs {
			if len(a) == 0 {
				return errors.New("announce address: empty multiaddr")
			}
			if transportOf(a) == "" {
				return fmt.Errorf("announce address %s: not a TCP (/ip4/ADDR/tcp/PORT) or QUIC (/ip4/ADDR/udp/PORT/quic-v1) address", a)
			}
		}
		c.announce = append(c.announce, addrs...)
		return nil
	}
}

// Relay enables (the default) or disables the circuit relay v2 client
// transport: dialing /p2p-circuit addresses and accepting connections
// relayed to this host. This host never relays for others. Relayed
// connections are "limited": streams over them need
// network.WithAllowLimitedConn.
func Relay(enable bool) Option {
	return func(c *config) error {
		if err := c.once("relay"); err != nil {
			return err
		}
		c.relay = enable
		return nil
	}
}

// ForceReachability pins what AutoNAT would otherwise find out:
// network.ReachabilityPublic or network.ReachabilityPrivate.
// network.ReachabilityUnknown (the default) lets AutoNAT decide. Testbeds on
// private addresses use Public to make DHT auto mode act as a server.
func ForceReachability(r network.Reachability) Option {
	return func(c *config) error {
		if err := c.once("reachability"); err != nil {
			return err
		}
		switch r {
		case network.ReachabilityUnknown, network.ReachabilityPublic, network.ReachabilityPrivate:
			c.reachability = r
			return nil
		}
		return fmt.Errorf("reachability: unknown value %d", r)
	}
}

// MaxStreamsPerPeer sets the resource manager's stream budget per peer (the
// default is DefaultMaxStreamsPerPeer); the other stream and memory limits
// follow from it as the package documentation's table shows. Lower it on
// small machines: every yamux stream accounts for 256 KiB of receive window.
func MaxStreamsPerPeer(n int) Option {
	return func(c *config) error {
		if err := c.once("max streams per peer"); err != nil {
			return err
		}
		if n < minStreamsPerPeer || n > maxStreamsPerPeer {
			return fmt.Errorf("max streams per peer: %d is outside %d-%d", n, minStreamsPerPeer, maxStreamsPerPeer)
		}
		c.maxStreams = n
		return nil
	}
}

// TLSTransport replaces go-libp2p's TLS 1.3 security transport (the
// default, and the reference behaviour) with another implementation of the
// same protocol, such as fastpath.NewCorkedTLS. constructor has the form
// libp2p.Security takes: a function of the ID, private key and muxers
// (injected by go-libp2p) that returns a sec.SecureTransport and an error.
func TLSTransport(constructor any) Option {
	return func(c *config) error {
		if err := c.once("TLS transport"); err != nil {
			return err
		}
		if constructor == nil {
			return errors.New("TLS transport: no constructor given")
		}
		c.tlsTransport = constructor
		return nil
	}
}

// validate rejects combinations of options that contradict each other.
func (c *config) validate() error {
	if c.rcmgrMetrics && c.registerer == nil {
		return errors.New("resource manager metrics need PrometheusRegisterer")
	}
	if c.natTraversal && !c.relay {
		return errors.New("NAT traversal needs the relay transport, which is disabled")
	}
	if c.punchTracer != nil && !c.holePunching {
		return errors.New("hole punch tracer given with hole punching disabled")
	}
	if c.listenSet {
		for _, a := range c.listenAddrs {
			if !c.enabled(transportOf(a)) {
				return fmt.Errorf("listen address %s: the %s transport is disabled", a, transportOf(a))
			}
		}
	}
	return nil
}

// enabled reports whether transport t is on.
func (c *config) enabled(t Transport) bool {
	return (t == TCP && c.tcp) || (t == QUIC && c.quic)
}

// transportOf names the transport that can listen on a, or "" if neither
// can: TCP for /ip*/tcp/PORT, QUIC for /ip*/udp/PORT/quic-v1, nothing for
// anything layered on top (websocket, webtransport) or without an IP.
func transportOf(a ma.Multiaddr) Transport {
	var codes []int
	for _, c := range a {
		codes = append(codes, c.Code())
	}
	if len(codes) > 0 && codes[0] == ma.P_IP6ZONE {
		codes = codes[1:]
	}
	if len(codes) == 0 || (codes[0] != ma.P_IP4 && codes[0] != ma.P_IP6) {
		return ""
	}
	switch {
	case len(codes) == 2 && codes[1] == ma.P_TCP:
		return TCP
	case len(codes) == 3 && codes[1] == ma.P_UDP && codes[2] == ma.P_QUIC_V1:
		return QUIC
	}
	return ""
}
