package host

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	lphost "github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/p2pd/p2pd/internal/leakcheck"
	"github.com/p2pd/p2pd/version"
	"github.com/prometheus/client_golang/prometheus"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := leakcheck.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: goroutines left after the tests: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

var (
	loopTCP  = ma.StringCast("/ip4/127.0.0.1/tcp/0")
	loopQUIC = ma.StringCast("/ip4/127.0.0.1/udp/0/quic-v1")
)

// newHost builds a host with opts (listening on 127.0.0.1 over TCP and QUIC
// unless opts say otherwise) and closes it when the test ends.
func newHost(t *testing.T, opts ...Option) lphost.Host {
	t.Helper()
	h, err := New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("closing host: %v", err)
		}
	})
	return h
}

func TestOptionErrors(t *testing.T) {
	sk, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		opts []Option
		err  string
	}{
		{"nil identity", []Option{Identity(nil)}, "identity: no private key given"},
		{"identity twice", []Option{Identity(sk), Identity(sk)}, "identity given more than once"},
		{"empty listen address", []Option{ListenAddrs(ma.Multiaddr{})}, "listen address: empty multiaddr"},
		{"websocket listen address", []Option{ListenAddrs(ma.StringCast("/ip4/127.0.0.1/tcp/0/ws"))},
			"listen address /ip4/127.0.0.1/tcp/0/ws: not a TCP (/tcp/PORT) or QUIC (/udp/PORT/quic-v1) address"},
		{"dns listen address", []Option{ListenAddrs(ma.StringCast("/dns4/localhost/tcp/0"))},
			"listen address /dns4/localhost/tcp/0: not a TCP (/tcp/PORT) or QUIC (/udp/PORT/quic-v1) address"},
		{"listen address of a disabled transport", []Option{Transports(TCP), ListenAddrs(loopQUIC)},
			"listen address /ip4/127.0.0.1/udp/0/quic-v1: the quic transport is disabled"},
		{"no transports", []Option{Transports()}, "transports: at least one transport is needed"},
		{"unknown transport", []Option{Transports(TCP, "ws")}, `transports: unknown transport "ws" (known: "tcp", "quic")`},
		{"transports twice", []Option{Transports(TCP), Transports(QUIC)}, "transports given more than once"},
		{"nil gater", []Option{ConnectionGater(nil)}, "connection gater: nil gater"},
		{"empty user agent", []Option{UserAgent("")}, "user agent: empty string"},
		{"nil registerer", []Option{PrometheusRegisterer(nil)}, "prometheus registerer: nil registerer"},
		{"registerer twice", []Option{PrometheusRegisterer(prometheus.NewRegistry()), PrometheusRegisterer(prometheus.NewRegistry())},
			"prometheus registerer given more than once"},
		{"rcmgr metrics without a registerer", []Option{ResourceManagerMetrics(true)},
			"resource manager metrics need PrometheusRegisterer"},
		{"rcmgr metrics twice", []Option{ResourceManagerMetrics(true), ResourceManagerMetrics(false)},
			"resource manager metrics given more than once"},
		{"negative low water", []Option{ConnManager(-1, 10, 0)}, "connection manager: low water mark -1 is negative"},
		{"zero high water", []Option{ConnManager(0, 0, 0)}, "connection manager: high water mark 0 must be at least 1"},
		{"low above high", []Option{ConnManager(20, 10, 0)}, "connection manager: low water mark 20 is above the high water mark 10"},
		{"negative grace", []Option{ConnManager(1, 10, -time.Second)}, "connection manager: grace period -1s is negative"},
		{"zero trusted prefix", []Option{TrustedNetworks(netip.Prefix{})}, "trusted networks: the zero prefix is not a range"},
		{"nat traversal without relay", []Option{NATTraversal(true), Relay(false)},
			"NAT traversal needs the relay transport, which is disabled"},
		{"relay twice", []Option{Relay(true), Relay(false)}, "relay given more than once"},
		{"hole punching twice", []Option{HolePunching(true), HolePunching(false)}, "hole punching given more than once"},
		{"nil hole punch tracer", []Option{HolePunchTracer(nil)}, "hole punch tracer: nil tracer"},
		{"tracer without hole punching", []Option{HolePunching(false), HolePunchTracer(nopTracer{})},
			"hole punch tracer given with hole punching disabled"},
		{"NAT service twice", []Option{NATService(true), NATService(true)}, "NAT service given more than once"},
		{"empty announce address", []Option{AnnounceAddrs(ma.Multiaddr{})}, "announce address: empty multiaddr"},
		{"announce address with peer ID", []Option{AnnounceAddrs(ma.StringCast("/ip4/1.2.3.4/tcp/4001/p2p/12D3KooWAEYtYAwFkN95p97zyuV2QZWDUnuY2fcbvMDtX7C9bUqF"))},
			"announce address /ip4/1.2.3.4/tcp/4001/p2p/12D3KooWAEYtYAwFkN95p97zyuV2QZWDUnuY2fcbvMDtX7C9bUqF: not a TCP (/ip4/ADDR/tcp/PORT) or QUIC (/ip4/ADDR/udp/PORT/quic-v1) address"},
		{"bad reachability", []Option{ForceReachability(network.Reachability(7))}, "reachability: unknown value 7"},
		{"too few streams", []Option{MaxStreamsPerPeer(10)}, "max streams per peer: 10 is outside 256-1048576"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := New(tt.opts...)
			if err == nil {
				h.Close()
				t.Fatalf("New succeeded, want error %q", tt.err)
			}
			if err.Error() != tt.err {
				t.Fatalf("New error = %q, want %q", err, tt.err)
			}
		})
	}
}

func TestListenErrors(t *testing.T) {
	tests := []struct {
		name   string
		addr   string
		prefix string
	}{
		{"tcp on a foreign address", "/ip4/192.0.2.254/tcp/0", "listening on /ip4/192.0.2.254/tcp/0: "},
		{"quic on a foreign address", "/ip4/192.0.2.254/udp/0/quic-v1", "listening on /ip4/192.0.2.254/udp/0/quic-v1: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The first address works: an explicit list must work entirely.
			h, err := New(ListenAddrs(loopTCP, ma.StringCast(tt.addr)))
			if err == nil {
				h.Close()
				t.Fatal("New succeeded although one listen address cannot work")
			}
			if !strings.HasPrefix(err.Error(), tt.prefix) || !errors.Is(err, syscall.EADDRNOTAVAIL) {
				t.Fatalf("New error = %q, want %q followed by the bind error (EADDRNOTAVAIL)", err, tt.prefix)
			}
		})
	}
}

func TestListenNowhere(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dialer := newHost(t, ListenAddrs())
	for _, a := range dialer.Network().ListenAddresses() {
		// The relay transport's /p2p-circuit "listener" has no socket.
		if transportOf(a) != "" {
			t.Fatalf("ListenAddrs() with no address listens on %v", a)
		}
	}
	target := newHost(t, ListenAddrs(loopTCP))
	if err := dialer.Connect(ctx, peer.AddrInfo{ID: target.ID(), Addrs: target.Addrs()}); err != nil {
		t.Fatalf("a host listening nowhere cannot dial: %v", err)
	}
}

func TestIdentityAndUserAgent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sk, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	want, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		t.Fatal(err)
	}
	a := newHost(t, Identity(sk), ListenAddrs(loopTCP))
	if a.ID() != want {
		t.Fatalf("host ID %s, want %s from the given key", a.ID(), want)
	}
	b := newHost(t, ListenAddrs(loopTCP), UserAgent("p2pd-test/9"))
	if b.ID() == a.ID() {
		t.Fatal("two hosts without Identity share a peer ID")
	}
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatal(err)
	}
	agent := func(h lphost.Host, p peer.ID) string {
		v, err := h.Peerstore().Get(p, "AgentVersion")
		if err != nil {
			return ""
		}
		s, _ := v.(string)
		return s
	}
	waitFor(ctx, t, "identify", func() bool { return agent(a, b.ID()) != "" && agent(b, a.ID()) != "" })
	if got := agent(b, a.ID()); got != version.UserAgent() {
		t.Fatalf("default user agent %q, want %q", got, version.UserAgent())
	}
	if got := agent(a, b.ID()); got != "p2pd-test/9" {
		t.Fatalf("user agent %q, want %q", got, "p2pd-test/9")
	}
	// TLS is preferred over Noise on TCP.
	conns := a.Network().ConnsToPeer(b.ID())
	if len(conns) != 1 || conns[0].ConnState().Security != "/tls/1.0.0" || conns[0].ConnState().StreamMultiplexer != "/yamux/1.0.0" {
		t.Fatalf("want one TLS+yamux connection, got %+v", conns)
	}
}

func TestConnManager(t *testing.T) {
	tests := []struct {
		name      string
		opts      []Option
		low, high int
		grace     time.Duration
	}{
		{"defaults", nil, DefaultConnLow, DefaultConnHigh, DefaultConnGrace},
		{"custom", []Option{ConnManager(5, 9, 3*time.Second)}, 5, 9, 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHost(t, append(tt.opts, ListenAddrs(loopTCP))...)
			cm, ok := h.ConnManager().(*connmgr.BasicConnMgr)
			if !ok {
				t.Fatalf("ConnManager() is %T, want *connmgr.BasicConnMgr", h.ConnManager())
			}
			info := cm.GetInfo()
			if info.LowWater != tt.low || info.HighWater != tt.high || info.GracePeriod != tt.grace {
				t.Fatalf("conn manager low %d high %d grace %v, want %d %d %v",
					info.LowWater, info.HighWater, info.GracePeriod, tt.low, tt.high, tt.grace)
			}
			p := peer.ID("some peer")
			cm.Protect(p, "tunnel")
			if !cm.IsProtected(p, "tunnel") {
				t.Fatal("Protect did not protect")
			}
		})
	}
}

func TestLimits(t *testing.T) {
	tests := []struct {
		name    string
		perPeer int
	}{
		{"default budget", DefaultMaxStreamsPerPeer},
		{"smaller budget", 1024},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := limitConfig(tt.perPeer).ToPartialLimitConfig()
			p := rcmgr.LimitVal(tt.perPeer)
			for _, s := range []struct {
				scope string
				got   rcmgr.ResourceLimits
				want  rcmgr.LimitVal
			}{
				{"system", l.System, 2 * p},
				{"transient", l.Transient, p},
				{"peer", l.PeerDefault, p},
				{"protocol", l.ProtocolDefault, 2 * p},
				{"protocol peer", l.ProtocolPeerDefault, p},
			} {
				if s.got.StreamsInbound != s.want || s.got.StreamsOutbound != s.want || s.got.Streams != s.want {
					t.Errorf("%s streams in/out/total %d/%d/%d, want %d each",
						s.scope, s.got.StreamsInbound, s.got.StreamsOutbound, s.got.Streams, s.want)
				}
			}
			if need := rcmgr.LimitVal64(int64(p) * yamuxStreamWindow); l.PeerDefault.Memory < need {
				t.Errorf("peer memory %d cannot hold %d yamux windows (%d)", l.PeerDefault.Memory, p, need)
			}
			if need := rcmgr.LimitVal64(2 * int64(p) * yamuxStreamWindow); l.System.Memory < need {
				t.Errorf("system memory %d cannot hold %d yamux windows (%d)", l.System.Memory, 2*p, need)
			}
			// Connection counts keep go-libp2p's bounded defaults.
			if l.PeerDefault.Conns != 8 || l.PeerDefault.ConnsInbound != 8 || l.PeerDefault.ConnsOutbound != 8 {
				t.Errorf("peer conns %d/%d/%d, want 8 each", l.PeerDefault.ConnsInbound, l.PeerDefault.ConnsOutbound, l.PeerDefault.Conns)
			}
			if c := l.System.Conns; c <= 0 || c > 100000 {
				t.Errorf("system conns %d are not a finite bound", c)
			}
		})
	}
}

// nonLoopbackIPv4 returns an IPv4 address of this machine that is not
// loopback, if there is one.
func nonLoopbackIPv4() (netip.Addr, bool) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return netip.Addr{}, false
	}
	for _, a := range addrs {
		pfx, err := netip.ParsePrefix(a.String())
		if err != nil {
			continue
		}
		if ip := pfx.Addr(); ip.Is4() && !ip.IsLoopback() {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

// TestTrustedNetworks connects 12 hosts from one non-loopback IPv4 address
// to a server: go-libp2p's per-IP limit admits 8, and TrustedNetworks
// covering that address admits all 12.
func TestTrustedNetworks(t *testing.T) {
	ip, ok := nonLoopbackIPv4()
	if !ok {
		t.Skip("no non-loopback IPv4 address on this machine")
	}
	const clients = 12
	tests := []struct {
		name     string
		trusted  []netip.Prefix
		wantConn int
	}{
		{"default per-IP limit", nil, 8},
		{"trusted network", []netip.Prefix{netip.PrefixFrom(ip, 32)}, clients},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			listen := ma.StringCast("/ip4/" + ip.String() + "/tcp/0")
			server := newHost(t, ListenAddrs(listen), Transports(TCP), TrustedNetworks(tt.trusted...))
			ok := 0
			for range clients {
				c := newHost(t, ListenAddrs(), Transports(TCP))
				if err := c.Connect(ctx, peer.AddrInfo{ID: server.ID(), Addrs: server.Addrs()}); err == nil {
					ok++
				}
			}
			waitFor(ctx, t, "the server to count its connections", func() bool {
				return len(server.Network().Conns()) == ok
			})
			if ok != tt.wantConn {
				t.Fatalf("%d of %d clients from %s connected, want %d", ok, clients, ip, tt.wantConn)
			}
		})
	}
}

func TestNATTraversalBuilds(t *testing.T) {
	// Nothing here can be exercised on loopback (see the option's
	// documentation); this shows the combination starts and, through
	// goleak, that Close stops all of it.
	h := newHost(t, ListenAddrs(loopTCP), NATTraversal(true), ForceReachability(network.ReachabilityPrivate))
	if len(h.Addrs()) == 0 {
		t.Fatal("host has no addresses")
	}
}

// nopTracer is a hole punch tracer that ignores everything.
type nopTracer struct{}

func (nopTracer) Trace(*holepunch.Event) {}

// TestAnnounceAndNATService shows announced addresses joining the host's
// own, once each, and that the AutoNAT service and a tracer build.
func TestAnnounceAndNATService(t *testing.T) {
	pub := ma.StringCast("/ip4/203.0.113.7/tcp/4001") // TEST-NET: never dialled
	h := newHost(t, ListenAddrs(loopTCP), AnnounceAddrs(pub, pub), NATService(true), HolePunchTracer(nopTracer{}))
	n := 0
	for _, a := range h.Addrs() {
		if a.Equal(pub) {
			n++
		}
	}
	if n != 1 || len(h.Addrs()) < 2 {
		t.Fatalf("addresses %v: want the loopback one and %s once", h.Addrs(), pub)
	}
}

func TestRelayCandidates(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var src relaySource
	drain := func(num int) []peer.AddrInfo {
		var out []peer.AddrInfo
		for ai := range src.candidates(ctx, num) {
			out = append(out, ai)
		}
		return out
	}
	if got := drain(4); len(got) != 0 {
		t.Fatalf("candidates before the host exists: %v", got)
	}
	h := newHost(t, ListenAddrs(loopTCP))
	src.host.Store(&h)
	if got := drain(4); len(got) != 0 {
		t.Fatalf("candidates without connections: %v", got)
	}
	var others []peer.ID
	for range 3 {
		o := newHost(t, ListenAddrs(loopTCP))
		if err := h.Connect(ctx, peer.AddrInfo{ID: o.ID(), Addrs: o.Addrs()}); err != nil {
			t.Fatal(err)
		}
		others = append(others, o.ID())
	}
	got := drain(2)
	if len(got) != 2 {
		t.Fatalf("asked for 2 candidates, got %d", len(got))
	}
	for _, ai := range got {
		if !slices.Contains(others, ai.ID) || len(ai.Addrs) == 0 {
			t.Fatalf("candidate %v is not a connected peer with addresses", ai)
		}
	}
	if got := drain(10); len(got) != 3 {
		t.Fatalf("asked for 10 candidates among 3 peers, got %d", len(got))
	}
}
