package daemon

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/p2pd/p2pd/api"
	"github.com/p2pd/p2pd/client"
	"github.com/p2pd/p2pd/nat"
)

// waitFor polls cond until it holds, failing the test after a generous
// bound (conditions, not timings, are what is tested).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func statusOf(t *testing.T, d *Daemon) *api.Status {
	t.Helper()
	c, err := client.NewDefaultClient(&client.Config{APIAddr: d.APIAddr(), Repo: d.repo.Path()})
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// relayAddr is d's loopback listen address with its peer ID.
func relayAddr(d *Daemon) ma.Multiaddr {
	for _, a := range d.Host().Addrs() {
		if manet.IsIPLoopback(a) {
			return a.Encapsulate(ma.StringCast("/p2p/" + d.Host().ID().String()))
		}
	}
	panic("no loopback address")
}

func mustRelays(t *testing.T, addrs ...ma.Multiaddr) Option {
	t.Helper()
	ais, err := nat.MergeRelays(addrs)
	if err != nil {
		t.Fatal(err)
	}
	return Relays(ais...)
}

// TestRelayReservationAndStatus runs a relay and a node that keeps a
// reservation on it (on loopback, where the relay's loopback address is
// the only one it has): status shows the reservation, its circuit address
// is announced, a third node reaches the node through it and sees the
// connection as relayed, and after the relay restarts the reservation is
// made again.
func TestRelayReservationAndStatus(t *testing.T) {
	rRepo := newRepo(t)
	// No DHT: it would tell b a's loopback address, and b would dial it.
	noDHT := DHT("off", "/daemontest")
	r := start(t, rRepo, noDHT, RelayService(nat.DefaultRelayConfig()))
	rAddr := relayAddr(r)
	a := start(t, newRepo(t), noDHT, mustRelays(t, rAddr), Reachability(network.ReachabilityPrivate))
	sub := a.events.Subscribe(0)
	defer sub.Close()

	var st *api.Status
	waitFor(t, "a reservation on the relay", func() bool {
		st = statusOf(t, a)
		return len(st.Relays) == 1 && st.Relays[0].Active
	})
	rsv := st.Relays[0]
	if rsv.Peer != r.Host().ID().String() || rsv.Expires == nil || !rsv.Expires.After(time.Now()) ||
		len(rsv.Addresses) == 0 || !strings.HasSuffix(rsv.Addresses[0], "/p2p/"+rsv.Peer+"/p2p-circuit") ||
		rsv.LimitData != nat.DefaultRelayLimitData || time.Duration(rsv.LimitDuration) != nat.DefaultRelayLimitDuration {
		t.Fatalf("reservation: %+v", rsv)
	}
	if st.Reachability != "private" || !st.ReachabilityForced || st.RelayService != nil ||
		!strings.Contains(st.Verdict, "reachable through relay "+rsv.Peer) {
		t.Fatalf("status: %+v", st)
	}
	circuit := rsv.Addresses[0] + "/p2p/" + st.ID
	waitFor(t, "the circuit address among the announced ones", func() bool {
		return slices.Contains(statusOf(t, a).Announced, circuit)
	})
	if rs := statusOf(t, r); rs.RelayService == nil || rs.RelayService.LimitData != nat.DefaultRelayLimitData ||
		!strings.HasPrefix(rs.Verdict, "relaying for others; ") {
		t.Fatalf("relay status: %+v", rs)
	}

	// A third node dials a through the relay.
	b := start(t, newRepo(t), noDHT)
	ai, err := peer.AddrInfoFromString(circuit)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Host().Connect(ctx, *ai); err != nil {
		t.Fatalf("dialing through the relay: %v", err)
	}
	c, err := client.NewDefaultClient(&client.Config{APIAddr: b.APIAddr(), Repo: b.repo.Path()})
	if err != nil {
		t.Fatal(err)
	}
	peers, err := c.Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var seen bool
	for _, p := range peers {
		if p.ID == st.ID {
			seen = p.Connection == api.ConnectionRelayed && p.Transport == "tcp" && strings.Contains(p.Address, "/p2p-circuit")
		} else if p.ID == rsv.Peer && (p.Connection != api.ConnectionDirect || p.Transport != "tcp") {
			t.Fatalf("relay shown as %+v", p)
		}
	}
	if !seen {
		t.Fatalf("peers of b: %+v; want a with a relayed tcp connection", peers)
	}
	if bs := statusOf(t, b); bs.Peers.Relayed != 1 || bs.Peers.Direct != 1 {
		t.Fatalf("b's peer counts: %+v", bs.Peers)
	}

	// The relay restarts on the same address: the reservation is lost,
	// then made again.
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	port, _ := rAddr.ValueForProtocol(ma.P_TCP)
	start(t, rRepo, noDHT, RelayService(nat.DefaultRelayConfig()),
		ListenAddrs(ma.StringCast("/ip4/127.0.0.1/tcp/"+port)))
	var lost, again bool
	for !again {
		ev, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for reservation events: %v (lost seen: %v)", err, lost)
		}
		if ev.Type != api.EventRelayReservation || ev.Relay == nil || ev.Peer != rsv.Peer {
			continue
		}
		if !ev.Relay.Active {
			lost = lost || ev.Relay.Error != ""
		} else if lost {
			again = true
		}
	}
}

// TestUnreachableRelayIsNotFatal starts a node whose relays do not serve:
// one does not answer, the other is no relay. It starts, and status says
// why it has no reservation on either.
func TestUnreachableRelayIsNotFatal(t *testing.T) {
	dead := start(t, newRepo(t))
	deadAddr := relayAddr(dead)
	if err := dead.Close(); err != nil {
		t.Fatal(err)
	}
	plain := start(t, newRepo(t), DHT("off", "/daemontest"))
	a := start(t, newRepo(t), mustRelays(t, deadAddr, relayAddr(plain)), Reachability(network.ReachabilityPrivate))
	var st *api.Status
	waitFor(t, "both failed reservations in status", func() bool {
		st = statusOf(t, a)
		return len(st.Relays) == 2 && st.Relays[0].Error != "" && st.Relays[1].Error != ""
	})
	for _, r := range st.Relays {
		if r.Active || r.Expires != nil || len(r.Addresses) != 0 || strings.Contains(r.Error, "\n") {
			t.Fatalf("relay entry: %+v", r)
		}
	}
	if st.Relays[0].Peer != dead.Host().ID().String() || !strings.HasPrefix(st.Relays[0].Error, "connecting to the relay: ") ||
		st.Relays[1].Peer != plain.Host().ID().String() ||
		!strings.HasPrefix(st.Relays[1].Error, "asking for a reservation (does the peer run --relay-service?): ") ||
		!strings.Contains(st.Verdict, "not reachable from outside: no relay reservation (relay "+st.Relays[0].Peer) {
		t.Fatalf("status: %+v", st)
	}
}

// TestStatusWithoutRelay covers the verdicts of a node with no relay.
func TestStatusWithoutRelay(t *testing.T) {
	for _, tt := range []struct {
		reach network.Reachability
		want  string
	}{
		{network.ReachabilityPrivate, "not reachable from outside and no relay configured: add --relay"},
		{network.ReachabilityPublic, "reachable from outside at its public addresses"},
		{network.ReachabilityUnknown, "reachability unknown"},
	} {
		d := start(t, newRepo(t), Reachability(tt.reach))
		st := statusOf(t, d)
		if !strings.HasPrefix(st.Verdict, tt.want) || len(st.Relays) != 0 || st.DHT.Mode != "server" ||
			st.HolePunching.Ready || !st.HolePunching.Enabled || len(st.Addresses) == 0 {
			t.Errorf("reachability %v: %+v", tt.reach, st)
		}
		d.Close()
	}
}

// TestRelayAllowPeerAndAnnounce: a relay restricted to other peers refuses
// a reservation, and status says so; an announced address is announced.
func TestRelayAllowPeerAndAnnounce(t *testing.T) {
	noDHT := DHT("off", "/daemontest")
	other := start(t, newRepo(t), noDHT)
	rc := nat.DefaultRelayConfig()
	rc.AllowPeers = []peer.ID{other.Host().ID()}
	pub := ma.StringCast("/ip4/203.0.113.7/tcp/4001") // TEST-NET: never dialled
	r := start(t, newRepo(t), noDHT, RelayService(rc), Announce(pub))
	if rs := statusOf(t, r); !slices.Contains(rs.Announced, pub.String()+"/p2p/"+rs.ID) ||
		rs.RelayService == nil || !slices.Equal(rs.RelayService.AllowPeers, []string{other.Host().ID().String()}) {
		t.Fatalf("relay status: %+v", rs)
	}
	a := start(t, newRepo(t), noDHT, mustRelays(t, relayAddr(r)), Reachability(network.ReachabilityPrivate))
	var st *api.Status
	waitFor(t, "the refused reservation in status", func() bool {
		st = statusOf(t, a)
		return len(st.Relays) == 1 && st.Relays[0].Error != ""
	})
	if st.Relays[0].Active || st.Relays[0].Error != "the relay refused a reservation: this peer is not allowed (see its --relay-allow-peer)" {
		t.Fatalf("status: %+v", st.Relays[0])
	}
}
