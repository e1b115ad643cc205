package discovery

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	dht "github.com/libp2p/go-libp2p-kad-dht"
)

// Mode names accepted by Mode.
const (
	ModeAuto   = "auto"
	ModeServer = "server"
	ModeClient = "client"
	ModeOff    = "off"
)

// DefaultProtocolPrefix is the DHT protocol prefix used when ProtocolPrefix
// is not given: the public Amino DHT ("/ipfs/kad/1.0.0"), which the default
// bootstrap peers serve.
const DefaultProtocolPrefix = "/ipfs"

// Defaults of the tunable timings.
const (
	DefaultConnectTimeout  = 10 * time.Second
	DefaultFindIntervalMin = 250 * time.Millisecond
	DefaultFindIntervalMax = 30 * time.Second
	// DefaultAdvertiseInterval is the first wait before a rendezvous loop
	// announces again after a success (it doubles, see AdvertiseInterval).
	DefaultAdvertiseInterval = time.Minute
)

// Option configures a Service. Options validate their arguments and New
// reports the first error.
type Option func(*config) error

// config is the validated configuration of a Service.
type config struct {
	mode          string
	prefix        string
	bootstrap     []peer.AddrInfo
	bootstrapSet  bool // BootstrapPeers was given
	noBootstrap   bool // NoBootstrap was given
	mdns          bool
	addrFilter    func([]ma.Multiaddr) []ma.Multiaddr
	onPeerFound   func(source string, ai peer.AddrInfo)
	connectTO     time.Duration
	findMin       time.Duration
	findMax       time.Duration
	advertiseMinI time.Duration // first re-advertise interval after a success
}

func defaultConfig() config {
	return config{
		mode:          ModeAuto,
		prefix:        DefaultProtocolPrefix,
		mdns:          true,
		connectTO:     DefaultConnectTimeout,
		findMin:       DefaultFindIntervalMin,
		findMax:       DefaultFindIntervalMax,
		advertiseMinI: DefaultAdvertiseInterval,
	}
}

// bootstrapPeers returns the bootstrap peers the configuration asks for.
func (c *config) bootstrapPeers() []peer.AddrInfo {
	switch {
	case c.noBootstrap:
		return nil
	case c.bootstrapSet:
		return c.bootstrap
	default:
		return dht.GetDefaultBootstrapPeerAddrInfos()
	}
}

// dhtMode maps a mode name to the kad-dht mode. "auto" maps to
// dht.ModeAutoServer, not dht.ModeAuto: ModeAuto starts as a client and
// becomes a server only once AutoNAT reports public reachability, which
// AutoNAT v1 never does for loopback or private addresses, so on a LAN or a
// test network every node would stay a client and no node would enter any
// routing table. ModeAutoServer serves while reachability is unknown or
// public and falls back to client only when AutoNAT positively reports that
// the node is behind a NAT.
func dhtMode(m string) dht.ModeOpt {
	switch m {
	case ModeServer:
		return dht.ModeServer
	case ModeClient:
		return dht.ModeClient
	default:
		return dht.ModeAutoServer
	}
}

// Mode sets the DHT mode: "auto" (the default), "server", "client" or "off".
// "auto" serves DHT requests unless AutoNAT finds the node is behind a NAT,
// which makes it work on private and loopback networks too. "off" creates no
// DHT: rendezvous and FindPeer are unavailable (ErrDHTOff), mDNS still works.
func Mode(m string) Option {
	return func(c *config) error {
		switch m {
		case ModeAuto, ModeServer, ModeClient, ModeOff:
			c.mode = m
			return nil
		}
		return fmt.Errorf("unknown DHT mode %q: want auto, server, client or off", m)
	}
}

// ProtocolPrefix sets the DHT protocol prefix: "/name" makes the DHT speak
// "/name/kad/1.0.0", so nodes with another prefix never mix with it. The
// prefix must start with "/", must not end with "/" and must not contain
// white space or empty segments. The default is "/ipfs", the public Amino DHT.
func ProtocolPrefix(p string) Option {
	return func(c *config) error {
		if err := validPrefix(p); err != nil {
			return fmt.Errorf("invalid DHT protocol prefix %q: %w", p, err)
		}
		c.prefix = p
		return nil
	}
}

func validPrefix(p string) error {
	switch {
	case !strings.HasPrefix(p, "/"):
		return errors.New(`must start with "/"`)
	case p == "/" || strings.HasSuffix(p, "/"):
		return errors.New(`must not end with "/"`)
	case strings.Contains(p, "//"):
		return errors.New("must not contain an empty segment")
	case strings.IndexFunc(p, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0:
		return errors.New("must not contain white space or control characters")
	}
	return nil
}

// BootstrapPeers sets the peers the DHT joins the network through, replacing
// the default public bootstrap list (dht.GetDefaultBootstrapPeerAddrInfos).
// Each peer needs an ID and at least one address. Calling it with no peers is
// an error: say NoBootstrap() to use none. Several calls add up.
func BootstrapPeers(peers ...peer.AddrInfo) Option {
	return func(c *config) error {
		if len(peers) == 0 {
			return errors.New("no bootstrap peers given: use NoBootstrap() for none")
		}
		if c.noBootstrap {
			return errors.New("bootstrap peers given together with NoBootstrap()")
		}
		for _, ai := range peers {
			if err := ai.ID.Validate(); err != nil {
				return fmt.Errorf("invalid bootstrap peer: %w", err)
			}
			if len(ai.Addrs) == 0 {
				return fmt.Errorf("bootstrap peer %s has no address", ai.ID)
			}
		}
		c.bootstrap = append(c.bootstrap, peers...)
		c.bootstrapSet = true
		return nil
	}
}

// NoBootstrap makes the service use no bootstrap peer at all: the node joins
// the DHT only through peers that connect to it or that it connects to by
// other means (mDNS, explicit connects). It conflicts with BootstrapPeers.
func NoBootstrap() Option {
	return func(c *config) error {
		if c.bootstrapSet {
			return errors.New("NoBootstrap() given together with bootstrap peers")
		}
		c.noBootstrap = true
		return nil
	}
}

// MDNS turns discovery on the local network on or off (default on). Nodes
// announce themselves under the service name MDNSServiceName, so p2pd nodes
// find each other and not every libp2p node on the LAN.
func MDNS(enable bool) Option {
	return func(c *config) error {
		c.mdns = enable
		return nil
	}
}

// AddrFilter sets a filter applied to addresses in both directions: to the
// node's own addresses before the DHT announces them (dht.AddressFilter,
// which also filters the addresses the DHT learns from other peers), and to
// the addresses of peers taken from the DHT or from mDNS before they are
// returned or dialled. A peer left with no address is skipped. Bootstrap
// peers are given explicitly and are not filtered; refusing dials is the
// host's connection gater's job. The filter must be safe for concurrent use
// and must not modify its argument.
func AddrFilter(f func([]ma.Multiaddr) []ma.Multiaddr) Option {
	return func(c *config) error {
		if f == nil {
			return errors.New("address filter is nil")
		}
		c.addrFilter = f
		return nil
	}
}

// OnPeerFound sets a function called when a rendezvous loop or mDNS finds a
// peer and holds a connection to it. source is the rendezvous string, or
// "mdns". It is called once per peer and source, and again after the peer was
// lost and is found and reconnected. It runs on the service's goroutines,
// possibly concurrently, and blocks the loop that calls it: it must return
// quickly and must not call Leave or Close.
func OnPeerFound(f func(source string, ai peer.AddrInfo)) Option {
	return func(c *config) error {
		if f == nil {
			return errors.New("peer-found callback is nil")
		}
		c.onPeerFound = f
		return nil
	}
}

// ConnectTimeout bounds each attempt to connect to a bootstrap peer or to a
// found peer (default DefaultConnectTimeout).
func ConnectTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("connect timeout %v: must be positive", d)
		}
		c.connectTO = d
		return nil
	}
}

// AdvertiseInterval sets the first wait before a rendezvous loop announces
// this node again after a successful announcement (default
// DefaultAdvertiseInterval); the wait doubles after each success, and a
// re-announcement always comes before the record expires.
func AdvertiseInterval(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("advertise interval %v: must be positive", d)
		}
		c.advertiseMinI = d
		return nil
	}
}

// FindInterval sets how often a rendezvous loop looks for peers: first after
// min, doubling after each round up to max (defaults DefaultFindIntervalMin
// and DefaultFindIntervalMax).
func FindInterval(min, max time.Duration) Option {
	return func(c *config) error {
		if min <= 0 || max < min {
			return fmt.Errorf("find interval %v..%v: want 0 < min <= max", min, max)
		}
		c.findMin, c.findMax = min, max
		return nil
	}
}
