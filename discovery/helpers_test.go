package discovery

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testPrefix keeps the test DHTs off the public one.
const testPrefix = "/p2pdtest"

// newHost builds a loopback-only TCP host; the caller closes it.
func newHost(tb testing.TB) host.Host {
	tb.Helper()
	h, err := libp2p.New(
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
	)
	if err != nil {
		tb.Fatalf("libp2p.New: %v", err)
	}
	return h
}

func info(h host.Host) peer.AddrInfo {
	return peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}
}

// recorder collects OnPeerFound calls.
type recorder struct {
	self peer.ID

	mu    sync.Mutex // guards found and bad
	found map[string]map[peer.ID]int
	bad   []string // reports that broke the contract
}

func newRecorder(self peer.ID) *recorder {
	return &recorder{self: self, found: make(map[string]map[peer.ID]int)}
}

func (r *recorder) add(source string, ai peer.AddrInfo) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ai.ID == r.self {
		r.bad = append(r.bad, "reported itself from "+source)
	}
	if len(ai.Addrs) == 0 {
		r.bad = append(r.bad, "reported "+ai.ID.String()+" without addresses from "+source)
	}
	if r.found[source] == nil {
		r.found[source] = make(map[peer.ID]int)
	}
	r.found[source][ai.ID]++
}

func (r *recorder) count(source string, id peer.ID) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.found[source][id]
}

func (r *recorder) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.found {
		for _, c := range m {
			n += c
		}
	}
	return n
}

func (r *recorder) check(tb testing.TB) {
	tb.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range r.bad {
		tb.Errorf("OnPeerFound: %s", b)
	}
}

// node is a host with its Service.
type node struct {
	h   host.Host
	s   *Service
	rec *recorder
}

// close closes the service, then the host.
func (n *node) close(tb testing.TB) {
	if err := n.s.Close(); err != nil {
		tb.Errorf("Service.Close: %v", err)
	}
	if err := n.h.Close(); err != nil {
		tb.Errorf("host.Close: %v", err)
	}
}

// startNode builds and starts a node with the test prefix, mDNS off and
// a recorder, plus opts; the caller closes it.
func startNode(tb testing.TB, ctx context.Context, opts ...Option) *node {
	tb.Helper()
	h := newHost(tb)
	rec := newRecorder(h.ID())
	all := append([]Option{ProtocolPrefix(testPrefix), MDNS(false), OnPeerFound(rec.add)}, opts...)
	s, err := New(h, all...)
	if err != nil {
		h.Close()
		tb.Fatalf("New: %v", err)
	}
	if err := s.Start(ctx); err != nil {
		h.Close()
		tb.Fatalf("Start: %v", err)
	}
	return &node{h: h, s: s, rec: rec}
}

// newNode is startNode with the node closed at the end of the test.
func newNode(t *testing.T, opts ...Option) *node {
	t.Helper()
	n := startNode(t, t.Context(), opts...)
	t.Cleanup(func() {
		n.rec.check(t)
		n.close(t)
	})
	return n
}

// startNetwork starts n nodes: node 0 without bootstrap peers, the others
// bootstrapping through node 0. extra options apply to every node.
func startNetwork(tb testing.TB, ctx context.Context, n int, extra ...Option) []*node {
	tb.Helper()
	nodes := make([]*node, n)
	nodes[0] = startNode(tb, ctx, append([]Option{NoBootstrap()}, extra...)...)
	boot := info(nodes[0].h)
	for i := 1; i < n; i++ {
		nodes[i] = startNode(tb, ctx, append([]Option{BootstrapPeers(boot)}, extra...)...)
	}
	return nodes
}

func newNetwork(t *testing.T, n int, extra ...Option) []*node {
	t.Helper()
	nodes := startNetwork(t, t.Context(), n, extra...)
	t.Cleanup(func() {
		for _, nd := range nodes {
			nd.rec.check(t)
			nd.close(t)
		}
	})
	return nodes
}

// eventually polls cond until it holds, failing the test after a generous
// deadline. The deadline is a safety net, not a measurement.
func eventually(tb testing.TB, within time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: still not true after %v", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitBootstrapped(tb testing.TB, nodes []*node) {
	tb.Helper()
	for i, n := range nodes {
		eventually(tb, 30*time.Second, fmt.Sprintf("routing table of node %d non-empty", i), func() bool {
			return n.s.RoutingTableSize() > 0
		})
	}
}

func ids(ais []peer.AddrInfo) map[peer.ID]peer.AddrInfo {
	m := make(map[peer.ID]peer.AddrInfo, len(ais))
	for _, ai := range ais {
		m[ai.ID] = ai
	}
	return m
}
