package daemon

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/p2pd/p2pd/nat"
)

// advertiseEvery sets the first wait of the rendezvous loops between two
// announcements.
func advertiseEvery(d time.Duration) Option {
	return func(c *config) error {
		c.advertiseEvery = d
		return nil
	}
}

// TestCircuitAddressesAreReadvertised: a node behind a NAT announces itself
// under its rendezvous string again when it gets a circuit address, so the
// DHT server answers with that address even though its provider records
// were lost since the node's last periodic announcement.
//
// A DHT server answers GET_PROVIDERS with the addresses its peerstore
// holds for each provider it has a record of, and identify keeps those
// addresses fresh while the provider is connected: a record that exists
// already follows the node's addresses by itself. What only a new
// ADD_PROVIDER can do is create the record. So the server restarts (its
// provider store is in memory) after the node's periodic announcement,
// whose next one is an hour away, and only then does the relay come up:
// without the re-announcement the server has no record of the node at all.
func TestCircuitAddressesAreReadvertised(t *testing.T) {
	const ns = "readvertise-test"
	// The relay's address is taken now; it serves only later, so the
	// node's first announcement carries no circuit address.
	rRepo := newRepo(t)
	noDHT := DHT("off", "/daemontest")
	r := start(t, rRepo, noDHT, RelayService(nat.DefaultRelayConfig()))
	rAddr, rID := relayAddr(r), r.Host().ID()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	sRepo := newRepo(t)
	s := start(t, sRepo) // the DHT server
	sAddr := relayAddr(s)
	sInfo, err := peer.AddrInfoFromP2pAddr(sAddr)
	if err != nil {
		t.Fatal(err)
	}
	client := DHT("client", "/daemontest") // answers no DHT query itself
	a := start(t, newRepo(t), client, Bootstrap(*sInfo), Rendezvous(ns), advertiseEvery(time.Hour),
		mustRelays(t, rAddr), Reachability(network.ReachabilityPrivate))
	b := start(t, newRepo(t), client, Bootstrap(*sInfo))
	aID := a.Host().ID()

	// find is what b learns of a from the DHT server; ok is false while
	// b has no DHT server to ask.
	find := func() (ai peer.AddrInfo, found, ok bool) {
		if b.disc.RoutingTableSize() == 0 {
			return peer.AddrInfo{}, false, false
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		all, err := b.disc.FindAll(ctx, ns)
		if err != nil {
			return peer.AddrInfo{}, false, false
		}
		for _, p := range all {
			if p.ID == aID {
				return p, true, true
			}
		}
		return peer.AddrInfo{}, false, true
	}
	// The periodic announcement reaches the server. No address of a has
	// changed yet (no relay), so no re-announcement has run: this one came
	// from the loop, whose next run is an hour away.
	waitFor(t, "the periodic announcement on the DHT server", func() bool {
		_, found, _ := find()
		return found
	})
	if circuits := circuitAddrs(a.Host().Addrs()); len(circuits) != 0 {
		t.Fatalf("circuit addresses before the relay serves: %v", circuits)
	}

	// The server restarts on the same address with an empty provider store.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	port, _ := sAddr.ValueForProtocol(ma.P_TCP)
	s = start(t, sRepo, ListenAddrs(ma.StringCast("/ip4/127.0.0.1/tcp/"+port)))
	waitFor(t, "a connected to the restarted server, which is in its routing table", func() bool {
		return a.Host().Network().Connectedness(s.Host().ID()) == network.Connected && a.disc.RoutingTableSize() > 0
	})
	waitFor(t, "b asking the restarted server", func() bool {
		_, found, ok := find()
		if found {
			t.Fatal("the restarted server still has a's record: the test proves nothing")
		}
		return ok
	})

	// The relay serves: a reserves a slot and gets a circuit address,
	// which a fresh announcement must bring to the server.
	port, _ = rAddr.ValueForProtocol(ma.P_TCP)
	start(t, rRepo, noDHT, RelayService(nat.DefaultRelayConfig()),
		ListenAddrs(ma.StringCast("/ip4/127.0.0.1/tcp/"+port)))
	// The relay's keeper retries with a back-off of up to a minute.
	deadline := time.Now().Add(3 * time.Minute)
	for len(circuitAddrs(a.Host().Addrs())) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("still waiting for a's circuit address")
		}
		time.Sleep(50 * time.Millisecond)
	}
	var got peer.AddrInfo
	waitFor(t, "the DHT server answering with a's circuit address", func() bool {
		ai, found, _ := find()
		got = ai
		return found && len(circuitAddrs(ai.Addrs)) > 0
	})
	want := "/p2p/" + rID.String() + "/p2p-circuit"
	for _, c := range circuitAddrs(got.Addrs) {
		if !strings.HasSuffix(c.String(), want) {
			t.Fatalf("circuit address %s is not through the relay %s", c, rID)
		}
	}
}

// circuitAddrs are the relayed addresses among addrs.
func circuitAddrs(addrs []ma.Multiaddr) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, a := range addrs {
		if nat.IsRelayed(a) {
			out = append(out, a)
		}
	}
	return out
}
