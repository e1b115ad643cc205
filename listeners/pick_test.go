package listeners

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/p2pd/p2pd/streams"
)

// roster stands in for the DHT's rendezvous records in tests: the peers
// advertising each name.
type roster struct {
	mu    sync.Mutex // guards names
	names map[string][]peer.AddrInfo
}

func (r *roster) FindAll(ctx context.Context, ns string) ([]peer.AddrInfo, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]peer.AddrInfo{}, r.names[ns]...), nil
}

func (r *roster) set(ns string, peers ...peer.AddrInfo) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.names == nil {
		r.names = map[string][]peer.AddrInfo{}
	}
	r.names[ns] = peers
}

// tagService answers every connection, once the client has sent all it
// sends, with tag: who served it.
func tagService(t testing.TB, tag string) *service {
	return newService(t, func(c net.Conn) {
		_, _ = io.Copy(io.Discard, c)
		_, _ = c.Write([]byte(tag))
	})
}

// whoServes makes one connection through addr and returns the tag that
// answered.
func whoServes(t testing.TB, addr ma.Multiaddr) string {
	t.Helper()
	got, err := roundTrip(t, addr, []byte("hello"))
	if err != nil {
		t.Fatalf("connection through %s: %v", addr, err)
	}
	return string(got)
}

// forwardToName makes n forward a fresh loopback port to the peers
// advertising name.
func forwardToName(t testing.TB, n *node, name string, pick Pick) Info {
	t.Helper()
	info, err := n.reg.Forward(t.Context(), ForwardRequest{
		Protocol:   testProto,
		Listen:     mustAddr(t, "/ip4/127.0.0.1/tcp/0"),
		Rendezvous: name,
		Pick:       pick,
	})
	if err != nil {
		t.Fatalf("forward to %s: %v", name, err)
	}
	return info
}

// entryOf returns the registry's current view of the forward on addr.
func entryOf(t testing.TB, n *node, addr ma.Multiaddr) Info {
	t.Helper()
	for _, i := range n.reg.List() {
		if i.Kind == KindForward && i.ListenAddr.Equal(addr) {
			return i
		}
	}
	t.Fatalf("no forward on %s", addr)
	return Info{}
}

func TestRendezvousFailover(t *testing.T) {
	var names roster
	a := newNode(t, WithRendezvousFinder(&names))
	b, c := newNode(t), newNode(t)
	tags := map[string]*node{"b": b, "c": c}
	for tag, n := range tags {
		listenOn(t, n, tagService(t, tag).addr)
	}
	names.set("team", addrInfo(b.h), addrInfo(c.h))

	fwd := forwardToName(t, a, "team", "")
	if fwd.Pick != PickFailover || fwd.Rendezvous != "team" || len(fwd.TargetAddr) != 0 {
		t.Fatalf("forward info: pick %q rendezvous %q target %v", fwd.Pick, fwd.Rendezvous, fwd.TargetAddr)
	}
	first := whoServes(t, fwd.ListenAddr)
	for range 4 {
		if got := whoServes(t, fwd.ListenAddr); got != first {
			t.Fatalf("failover moved from %s to %s while %s worked", first, got, first)
		}
	}
	if info := entryOf(t, a, fwd.ListenAddr); info.Peer != tags[first].h.ID() || len(info.Candidates) != 2 {
		t.Fatalf("ls: peer %s, candidates %v; want %s and both peers", info.Peer, info.Candidates, tags[first].h.ID())
	}

	// Stop the peer in use: the next connection goes to the other.
	gone := tags[first]
	if err := gone.h.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stopped peer to be disconnected", func() bool {
		return a.h.Network().Connectedness(gone.h.ID()) != network.Connected
	})
	other := "b"
	if first == "b" {
		other = "c"
	}
	if got := whoServes(t, fwd.ListenAddr); got != other {
		t.Fatalf("after %s stopped, %q served; want %s", first, got, other)
	}
	if got := whoServes(t, fwd.ListenAddr); got != other {
		t.Fatalf("failover went back to the stopped peer: %q served", got)
	}
	if info := entryOf(t, a, fwd.ListenAddr); info.Peer != tags[other].h.ID() {
		t.Fatalf("ls: peer %s, want %s", info.Peer, tags[other].h.ID())
	}
}

func TestRendezvousRoundRobin(t *testing.T) {
	var names roster
	a := newNode(t, WithRendezvousFinder(&names))
	b, c := newNode(t), newNode(t)
	listenOn(t, b, tagService(t, "b").addr)
	listenOn(t, c, tagService(t, "c").addr)
	names.set("team", addrInfo(b.h), addrInfo(c.h))

	fwd := forwardToName(t, a, "team", PickRoundRobin)
	served := map[string]int{}
	for range 20 {
		served[whoServes(t, fwd.ListenAddr)]++
	}
	if served["b"] != 10 || served["c"] != 10 {
		t.Fatalf("20 connections went %v; want 10 to each peer in turn", served)
	}
}

// TestRendezvousPeersComeAndGo checks the error while nobody advertises the
// name, and that a peer advertising it later is found without a restart.
func TestRendezvousPeersComeAndGo(t *testing.T) {
	var names roster
	a := newNode(t, WithRendezvousFinder(&names))
	b := newNode(t)
	listenOn(t, b, tagService(t, "b").addr)

	fwd := forwardToName(t, a, "later", PickRoundRobin)
	if got, err := roundTrip(t, fwd.ListenAddr, []byte("anyone?")); err == nil || len(got) != 0 {
		t.Fatalf("with nobody advertising: read %q, err %v; want a reset", got, err)
	}
	want := "no peer advertising later serves /x/test yet"
	if info := entryOf(t, a, fwd.ListenAddr); info.LastError != want {
		t.Fatalf("last error %q, want %q", info.LastError, want)
	}

	names.set("later", addrInfo(b.h))
	if got := whoServes(t, fwd.ListenAddr); got != "b" {
		t.Fatalf("%q served, want b", got)
	}
}

func TestForwardRequestRendezvousErrors(t *testing.T) {
	var names roster
	a := newNode(t, WithRendezvousFinder(&names))
	noFinder := newNode(t)
	listen := mustAddr(t, "/ip4/127.0.0.1/tcp/0")
	tests := []struct {
		n    *node
		req  ForwardRequest
		want string
	}{
		{a, ForwardRequest{Protocol: testProto, Listen: listen, Rendezvous: "x", Pick: "random"}, `invalid --pick value "random": want failover or round-robin`},
		{a, ForwardRequest{Protocol: testProto, Listen: listen, Target: p2pAddr(t, noFinder.h.ID()), Pick: PickRoundRobin}, "--pick goes with a rendezvous target"},
		{a, ForwardRequest{Protocol: testProto, Listen: listen, Target: p2pAddr(t, noFinder.h.ID()), Rendezvous: "x"}, "give a target peer or a rendezvous, not both"},
		{noFinder, ForwardRequest{Protocol: testProto, Listen: listen, Rendezvous: "x"}, "cannot look up rendezvous names"},
	}
	for _, tt := range tests {
		_, err := tt.n.reg.Forward(t.Context(), tt.req)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want %q", tt.req, err, tt.want)
		}
	}
}

func TestPickOrder(t *testing.T) {
	ids := make([]peer.AddrInfo, 4)
	for i := range ids {
		ids[i] = peer.AddrInfo{ID: peer.ID(fmt.Sprintf("peer-%d", i))}
	}
	set := newPeerSet("x", PickFailover)
	set.update([]peer.AddrInfo{ids[2], ids[0], ids[1]})
	now := time.Unix(1e9, 0)
	order := func() string {
		var s []string
		for _, ai := range set.candidates(now) {
			s = append(s, string(ai.ID))
		}
		return strings.Join(s, " ")
	}
	if got := order(); got != "peer-0 peer-1 peer-2" {
		t.Fatalf("failover, nothing used yet: %s", got)
	}
	set.worked(ids[1].ID)
	if got := order(); got != "peer-1 peer-0 peer-2" {
		t.Fatalf("failover after peer-1 worked: %s", got)
	}
	set.failed(ids[1].ID, now)
	if got := order(); got != "peer-0 peer-2 peer-1" {
		t.Fatalf("failover after peer-1 failed: %s", got)
	}
	if got := set.candidates(now.Add(skipDead))[0].ID; got != ids[0].ID {
		t.Fatalf("once peer-1's skip is over, failover still starts from %s", got)
	}

	rr := newPeerSet("x", PickRoundRobin)
	rr.update(ids[:3])
	var firsts []string
	for range 4 {
		firsts = append(firsts, string(rr.candidates(now)[0].ID))
	}
	if got := strings.Join(firsts, " "); got != "peer-0 peer-1 peer-2 peer-0" {
		t.Fatalf("round-robin turns: %s", got)
	}
	rr.failed(ids[1].ID, now)
	if got := rr.candidates(now); got[len(got)-1].ID != ids[1].ID {
		t.Fatalf("round-robin tries a failed peer before the others: %v", got)
	}
}

// TestRefusalReasons checks that the forwarding side learns why the
// listening side refused a stream.
func TestRefusalReasons(t *testing.T) {
	logs := captureLogs(t)
	a, b := newNode(t), newNode(t)
	stranger := randomPeer(t)
	if _, err := b.reg.Listen(t.Context(), ListenRequest{Protocol: testProto, Target: tagService(t, "b").addr,
		AllowPeers: []peer.ID{stranger}}); err != nil {
		t.Fatal(err)
	}
	fwd := forwardTo(t, a, addrTarget(t, b))
	want := fmt.Sprintf("refused by %s: not in the listener's --allow-peer list", b.h.ID())
	for range 2 { // the first stream negotiates; the second goes the lazy way
		if got, err := roundTrip(t, fwd.ListenAddr, []byte("let me in")); err == nil || len(got) != 0 {
			t.Fatalf("refused: read %q, err %v", got, err)
		}
		waitFor(t, "the refusal in last_error", func() bool { return entryOf(t, a, fwd.ListenAddr).LastError == want })
		a.reg.mu.Lock()
		a.reg.forwards[0].info.LastError = ""
		a.reg.mu.Unlock()
	}
	waitFor(t, "the refusal logged on the forwarding side", func() bool { return logs.has(map[string]string{"msg": want}) })

	// A listen whose target is down.
	c := newNode(t)
	if _, err := c.reg.Listen(t.Context(), ListenRequest{Protocol: testProto, Target: closedPort(t)}); err != nil {
		t.Fatal(err)
	}
	fwd = forwardTo(t, a, addrTarget(t, c))
	_, _ = roundTrip(t, fwd.ListenAddr, []byte("x"))
	want = fmt.Sprintf("refused by %s: its service behind /x/test is unreachable (the `p2pd listen` target does not answer)", c.h.ID())
	waitFor(t, "the unreachable target in last_error", func() bool { return entryOf(t, a, fwd.ListenAddr).LastError == want })

	// A peer that does not serve the protocol.
	d := newNode(t)
	fwd = forwardTo(t, a, addrTarget(t, d))
	_, _ = roundTrip(t, fwd.ListenAddr, []byte("x"))
	want = fmt.Sprintf("refused by %s: it does not serve /x/test (no `p2pd listen /x/test` there)", d.h.ID())
	waitFor(t, "the missing protocol in last_error", func() bool { return entryOf(t, a, fwd.ListenAddr).LastError == want })
}

// TestPeerBackIsDialledAtOnce stops a peer, lets a forward fail to reach
// it (which leaves a dial backoff), starts it again at the same address
// and checks that the next connection goes through at once.
func TestPeerBackIsDialledAtOnce(t *testing.T) {
	a := newNode(t)
	sk, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	svc := tagService(t, "b")
	serve := func(h host.Host) *Registry {
		s := streams.NewRegistry()
		reg := NewRegistry(h, s)
		t.Cleanup(func() { _ = reg.Shutdown(); _ = s.Close() })
		if _, err := reg.Listen(t.Context(), ListenRequest{Protocol: testProto, Target: svc.addr}); err != nil {
			t.Fatal(err)
		}
		return reg
	}
	b := newHostWith(t, libp2p.Identity(sk), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	regB := serve(b)
	addr := b.Addrs()[0]
	fwd := forwardTo(t, a, addr.Encapsulate(p2pAddr(t, b.ID())))
	if got := whoServes(t, fwd.ListenAddr); got != "b" {
		t.Fatalf("%q served, want b", got)
	}

	_ = regB.Shutdown()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b to be disconnected", func() bool { return a.h.Network().Connectedness(b.ID()) != network.Connected })
	if got, err := roundTrip(t, fwd.ListenAddr, []byte("x")); err == nil || len(got) != 0 {
		t.Fatalf("with b stopped: read %q, err %v; want a reset", got, err)
	}

	port, err := addr.ValueForProtocol(ma.P_TCP)
	if err != nil {
		t.Fatal(err)
	}
	b2 := newHostWith(t, libp2p.Identity(sk), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/"+port))
	serve(b2)
	if got, err := roundTrip(t, fwd.ListenAddr, []byte("hello")); err != nil || string(got) != "b" {
		t.Fatalf("b is back, but the forward got %q, %v (last error %q)", got, err, entryOf(t, a, fwd.ListenAddr).LastError)
	}
}
