package listeners

import (
	"context"
	"errors"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	client "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/p2pd/p2pd/nat"
	"github.com/p2pd/p2pd/streams"
)

// relayOnly is a connection gater that lets the host dial only relayed
// addresses of other peers than the relay, as behind two NATs.
type relayOnly struct{ relay *peer.ID }

func (g relayOnly) InterceptPeerDial(peer.ID) bool { return true }
func (g relayOnly) InterceptAddrDial(p peer.ID, a ma.Multiaddr) bool {
	return (g.relay != nil && p == *g.relay) || nat.IsRelayed(a)
}
func (g relayOnly) InterceptAccept(network.ConnMultiaddrs) bool { return true }
func (g relayOnly) InterceptSecured(network.Direction, peer.ID, network.ConnMultiaddrs) bool {
	return true
}
func (g relayOnly) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }

// relayHost builds a loopback host with the relay client transport on.
func relayHost(t *testing.T, opts ...libp2p.Option) host.Host {
	t.Helper()
	h, err := libp2p.New(append([]libp2p.Option{libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableMetrics()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// relayedPair builds a relay R (relay options ropts), a peer A with a
// reservation on it serving /x/echo, and a node B that knows A only by its
// circuit address and may dial it only through the relay (as if both were
// behind NATs), with a forward registry that uses tracker. Loopback has no
// public address, so hole punching never runs: a limited relay stays the
// only way between B and A.
func relayedPair(t *testing.T, tracker DirectPaths, ropts ...relay.Option) (a host.Host, r host.Host, b *node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	r = relayHost(t)
	rs, err := relay.New(r, ropts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.Close() })
	a = relayHost(t)
	a.SetStreamHandler("/x/echo", func(s network.Stream) {
		io.Copy(s, s)
		s.Close()
	})
	if err := a.Connect(ctx, addrInfo(r)); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Reserve(ctx, a, addrInfo(r)); err != nil {
		t.Fatal(err)
	}

	rid := r.ID()
	bh := relayHost(t, libp2p.ConnectionGater(relayOnly{relay: &rid}))
	s := streams.NewRegistry()
	t.Cleanup(func() { s.Close() })
	reg, err := New(bh, s, WithDialTimeout(time.Second), WithDirectPaths(tracker))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Shutdown() })
	circuit := r.Addrs()[0].Encapsulate(ma.StringCast("/p2p/" + r.ID().String() + "/p2p-circuit"))
	bh.Peerstore().AddAddrs(r.ID(), r.Addrs(), peerstore.PermanentAddrTTL)
	bh.Peerstore().AddAddr(a.ID(), circuit, peerstore.PermanentAddrTTL)
	return a, r, &node{h: bh, s: s, reg: reg}
}

// lastErrorAfter makes one connection through the forward listening on
// listen and returns the forward's last error once the connection ended.
func lastErrorAfter(t *testing.T, n *node, listen ma.Multiaddr) string {
	t.Helper()
	c, err := manet.Dial(listen)
	switch {
	case errors.Is(err, syscall.ECONNRESET):
		// A forward that fails at once can reset the connection before
		// the dial has seen it established: it ended all the same.
	case err != nil:
		t.Fatal(err)
	default:
		c.SetDeadline(time.Now().Add(testTimeout))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("the forward carried data over a limited relay")
		}
		c.Close()
	}
	for _, info := range n.reg.List() {
		if info.ListenAddr.Equal(listen) {
			return info.LastError
		}
	}
	t.Fatal("forward gone")
	return ""
}

// TestForwardFailsFastBehindLimitedRelay: with only a limited relay
// between the peers, a forward never opens its stream on the relay; it
// waits for a direct connection within its dial timeout, then explains
// (the relay and its limits), and remembers: once hole punching is known
// to have failed, connections fail with that reason at once.
func TestForwardFailsFastBehindLimitedRelay(t *testing.T) {
	tracker := nat.NewPunchTracker(time.Hour)
	a, r, b := relayedPair(t, tracker)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	info, err := b.reg.Forward(ctx, ForwardRequest{Protocol: "/x/echo", Listen: mustAddr(t, "/ip4/127.0.0.1/tcp/0"), Target: p2pAddr(t, a.ID())})
	if err != nil {
		t.Fatal(err)
	}
	tail := "; the relay " + r.ID().String() + " allows only 128 KiB / 2m0s per connection, too little to carry a tunnel; see `p2pd status`"
	want := "no direct connection to " + a.ID().String() + ": hole punching failed: no hole punching result within the dial timeout (1s)" + tail
	if got := lastErrorAfter(t, b, info.ListenAddr); got != want {
		t.Fatalf("last error:\n%s\nwant\n%s", got, want)
	}
	if err, _ := tracker.NoDirectPath(a.ID()); !errors.Is(err, nat.ErrPunchFailed) {
		t.Fatalf("the failure is not remembered: %v", err)
	}

	// What DCUtR reports replaces the guess.
	for range nat.PunchAttempts {
		tracker.Trace(&holepunch.Event{Remote: a.ID(), Evt: &holepunch.EndHolePunchEvt{Error: "all dials failed"}})
	}
	want = "no direct connection to " + a.ID().String() + ": hole punching failed 3 times (last: all dials failed)" + tail
	if got := lastErrorAfter(t, b, info.ListenAddr); got != want {
		t.Fatalf("last error:\n%s\nwant\n%s", got, want)
	}
	for _, c := range b.h.Network().ConnsToPeer(a.ID()) {
		if !c.Stat().Limited {
			t.Fatalf("unexpected connection %s", c.RemoteMultiaddr())
		}
		if n := len(c.GetStreams()); n != 0 {
			t.Fatalf("%d streams on the limited connection", n)
		}
	}
}

// TestForwardOverUnlimitedRelay: a relay that sets no limits gives
// connections that are not limited, and forwards use them.
func TestForwardOverUnlimitedRelay(t *testing.T) {
	a, _, b := relayedPair(t, nat.NewPunchTracker(0), relay.WithInfiniteLimits())
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	info, err := b.reg.Forward(ctx, ForwardRequest{Protocol: "/x/echo", Listen: mustAddr(t, "/ip4/127.0.0.1/tcp/0"), Target: p2pAddr(t, a.ID())})
	if err != nil {
		t.Fatal(err)
	}
	c, err := manet.Dial(info.ListenAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(testTimeout))
	msg := []byte(strings.Repeat("relayed bytes ", 1000))
	go c.Write(msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != string(msg) {
		t.Fatalf("echo through the unlimited relay: %v", err)
	}
	conns := b.h.Network().ConnsToPeer(a.ID())
	if len(conns) != 1 || conns[0].Stat().Limited || !nat.IsRelayed(conns[0].RemoteMultiaddr()) {
		t.Fatalf("connections to a: %v", conns)
	}
}

// TestForwardRetriesPunchWithNewRelayedConnection: once the failed punch
// is older than the retry interval, the next forward connection closes the
// relayed connection and dials a new one (DCUtR runs once per relayed
// connection), waiting for a direct connection again.
func TestForwardRetriesPunchWithNewRelayedConnection(t *testing.T) {
	tracker := nat.NewPunchTracker(time.Millisecond)
	a, _, b := relayedPair(t, tracker)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	info, err := b.reg.Forward(ctx, ForwardRequest{Protocol: "/x/echo", Listen: mustAddr(t, "/ip4/127.0.0.1/tcp/0"), Target: p2pAddr(t, a.ID())})
	if err != nil {
		t.Fatal(err)
	}
	lastErrorAfter(t, b, info.ListenAddr) // waits its dial timeout, remembered
	old := b.h.Network().ConnsToPeer(a.ID())
	if len(old) != 1 || !old[0].Stat().Limited {
		t.Fatalf("connections to a: %v", old)
	}
	time.Sleep(2 * time.Millisecond) // past the retry interval
	got := lastErrorAfter(t, b, info.ListenAddr)
	if !strings.Contains(got, "no hole punching result within the dial timeout") {
		t.Fatalf("last error after the retry: %s", got)
	}
	if !old[0].IsClosed() {
		t.Fatal("the old relayed connection was kept: hole punching was not retried")
	}
	now := b.h.Network().ConnsToPeer(a.ID())
	if len(now) != 1 || now[0].ID() == old[0].ID() || !now[0].Stat().Limited {
		t.Fatalf("connections to a after the retry: %v", now)
	}
}
