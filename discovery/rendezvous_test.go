package discovery

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/routing"
	ma "github.com/multiformats/go-multiaddr"
)

// fast makes the rendezvous loops of a test look often.
var fast = FindInterval(100*time.Millisecond, time.Second)

const patience = 60 * time.Second // safety net for polls, not a measurement

// findsAll reports whether one FindAll by n returns every peer in want,
// each with addresses, and never n itself.
func findsAll(t *testing.T, n *node, ns string, want ...*node) bool {
	t.Helper()
	found, err := n.s.FindAll(t.Context(), ns)
	if err != nil {
		t.Logf("FindAll: %v", err)
		return false
	}
	got := ids(found)
	if _, self := got[n.h.ID()]; self {
		t.Errorf("FindAll by %s returned itself", n.h.ID())
	}
	for _, ai := range found {
		if len(ai.Addrs) == 0 {
			t.Errorf("FindAll returned %s without addresses", ai.ID)
		}
	}
	for _, w := range want {
		if _, ok := got[w.h.ID()]; !ok {
			return false
		}
	}
	return true
}

func connected(a, b *node) bool {
	return a.h.Network().Connectedness(b.h.ID()) == network.Connected
}

// TestRendezvous: 10 nodes on one private DHT in the default "auto" mode;
// two join "x"; a third finds both; the two get connected and report each
// other; a node that joins later (before its own Start) is found by the
// earlier ones' loops, and finds them.
func TestRendezvous(t *testing.T) {
	nodes := newNetwork(t, 9, fast)
	waitBootstrapped(t, nodes)
	a, b, finder := nodes[1], nodes[2], nodes[3]

	joined := time.Now()
	for _, n := range []*node{a, b} {
		if err := n.s.Join("x"); err != nil {
			t.Fatalf("Join: %v", err)
		}
	}
	eventually(t, patience, "a and b report each other", func() bool {
		return a.rec.count("x", b.h.ID()) > 0 && b.rec.count("x", a.h.ID()) > 0
	})
	t.Logf("Join to mutual OnPeerFound: %v", time.Since(joined))
	if !connected(a, b) || !connected(b, a) {
		t.Errorf("a and b reported each other but are not connected")
	}
	eventually(t, patience, "a third node finds a and b", func() bool {
		return findsAll(t, finder, "x", a, b)
	})
	if !findsAll(t, a, "x", b) {
		t.Errorf("a does not find b")
	}

	// The tenth node joins late, and registers "x" before it starts.
	lh := newHost(t)
	t.Cleanup(func() { lh.Close() })
	lrec := newRecorder(lh.ID())
	ls, err := New(lh, ProtocolPrefix(testPrefix), MDNS(false), fast,
		BootstrapPeers(info(nodes[0].h)), OnPeerFound(lrec.add))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lrec.check(t); ls.Close() })
	if err := ls.Join("x"); err != nil {
		t.Fatalf("Join before Start: %v", err)
	}
	if err := ls.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}

	l := &node{h: lh, s: ls, rec: lrec}
	eventually(t, patience, "the late node reports a and b", func() bool {
		return l.rec.count("x", a.h.ID()) > 0 && l.rec.count("x", b.h.ID()) > 0
	})
	eventually(t, patience, "a's and b's loops report the late node", func() bool {
		return a.rec.count("x", l.h.ID()) > 0 && b.rec.count("x", l.h.ID()) > 0
	})
	if !connected(a, l) || !connected(b, l) {
		t.Errorf("the late node is not connected to a and b")
	}
	for i, n := range append(nodes, l) {
		for _, quiet := range []*node{nodes[0], finder, nodes[8]} {
			if c := n.rec.count("x", quiet.h.ID()); c != 0 {
				t.Errorf("node %d reported %s, which never joined", i, quiet.h.ID())
			}
		}
	}
	if c := a.rec.count("x", b.h.ID()); c != 1 {
		t.Errorf("a reported b %d times over several rounds, want once", c)
	}
}

// portOf returns the TCP port of h's first address.
func portOf(t *testing.T, h interface{ Addrs() []ma.Multiaddr }) string {
	t.Helper()
	for _, a := range h.Addrs() {
		if p, err := a.ValueForProtocol(ma.P_TCP); err == nil {
			return p
		}
	}
	t.Fatal("host has no TCP address")
	return ""
}

func dropPort(port string) func([]ma.Multiaddr) []ma.Multiaddr {
	return func(in []ma.Multiaddr) []ma.Multiaddr {
		var out []ma.Multiaddr
		for _, a := range in {
			if p, err := a.ValueForProtocol(ma.P_TCP); err == nil && p == port {
				continue
			}
			out = append(out, a)
		}
		return out
	}
}

func dropAll([]ma.Multiaddr) []ma.Multiaddr { return nil }

// TestAddrFilter: the filter removes our own addresses from what the DHT
// announces, and removes peers' addresses from what it finds, so a peer
// left without addresses is skipped.
func TestAddrFilter(t *testing.T) {
	nodes := newNetwork(t, 4, fast)
	boot := info(nodes[0].h)
	b, c := nodes[1], nodes[2]
	blind := newNode(t, BootstrapPeers(boot), fast, AddrFilter(dropAll))                // sees no address at all
	noB := newNode(t, BootstrapPeers(boot), fast, AddrFilter(dropPort(portOf(t, b.h)))) // cannot see b's addresses
	waitBootstrapped(t, append(nodes, blind, noB))

	// Outgoing: nothing left to announce is an error, not a silent no-op.
	_, err := blind.s.Advertise(t.Context(), "y")
	wantErr(t, "Advertise with every address filtered", err, ErrNoAddrs,
		`advertising "y": no address left to announce after the address filter`)
	if err := blind.s.Join("y"); err != nil { // its loop keeps failing to advertise, and finds nobody usable
		t.Fatal(err)
	}

	for _, n := range []*node{b, c} {
		if err := n.s.Join("y"); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, patience, "an unfiltered node finds b and c", func() bool {
		return findsAll(t, nodes[3], "y", b, c)
	})
	eventually(t, patience, "b and c report each other", func() bool {
		return b.rec.count("y", c.h.ID()) > 0 && c.rec.count("y", b.h.ID()) > 0
	})

	// Incoming: b's record is there (nodes[3] saw it) but noB drops b's
	// only address, so b is skipped while c is returned.
	eventually(t, patience, "the filtered node finds c", func() bool {
		return findsAll(t, noB, "y", c)
	})
	found, err := noB.s.FindAll(t.Context(), "y")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ids(found)[b.h.ID()]; ok {
		t.Errorf("FindAll returned b although the filter drops all its addresses: %v", found)
	}
	for _, ai := range found {
		for _, a := range ai.Addrs {
			if p, _ := a.ValueForProtocol(ma.P_TCP); p == portOf(t, b.h) {
				t.Errorf("a filtered address came through: %s", a)
			}
		}
	}

	// The blind node gets records but no usable address: nothing found,
	// nothing reported, and its own record was never stored.
	found, err = blind.s.FindAll(t.Context(), "y")
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 0 {
		t.Errorf("FindAll by a node that filters every address: got %v, want none", found)
	}
	if n := blind.rec.total(); n != 0 {
		t.Errorf("a node that filters every address reported %d peers", n)
	}
	if findsAll(t, nodes[3], "y", blind) {
		t.Errorf("the blind node's record was found although it had no address to announce")
	}
	for _, n := range []*node{b, c} {
		if got := n.rec.count("y", blind.h.ID()); got != 0 {
			t.Errorf("the blind node was reported although it announced nothing")
		}
	}
}

// TestFindPeer looks a peer up through the DHT and applies the filter.
func TestFindPeer(t *testing.T) {
	nodes := newNetwork(t, 5)
	waitBootstrapped(t, nodes)
	target := nodes[4]
	eventually(t, patience, "nodes[1] finds nodes[4]", func() bool {
		ai, err := nodes[1].s.FindPeer(t.Context(), target.h.ID())
		return err == nil && ai.ID == target.h.ID() && len(ai.Addrs) > 0
	})
	blind := newNode(t, BootstrapPeers(info(nodes[0].h)), AddrFilter(dropAll))
	waitBootstrapped(t, []*node{blind})
	// Connected, so the DHT answers from the peerstore and the filter decides.
	if err := blind.h.Connect(t.Context(), info(target.h)); err != nil {
		t.Fatal(err)
	}
	_, err := blind.s.FindPeer(t.Context(), target.h.ID())
	if !errors.Is(err, routing.ErrNotFound) {
		t.Fatalf("FindPeer with every address filtered: got %v, want routing.ErrNotFound", err)
	}
	if got, want := err.Error(), "finding peer "+target.h.ID().String()+": no address left after the address filter: routing: not found"; got != want {
		t.Errorf("FindPeer: got %q, want %q", got, want)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	missing := unreachablePeer(t).ID
	_, err = nodes[1].s.FindPeer(ctx, missing)
	wantErr(t, "FindPeer with a cancelled context", err, context.Canceled,
		"finding peer "+missing.String()+": context canceled")
}
