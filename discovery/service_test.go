package discovery

import (
	"context"
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/p2pd/p2pd/internal/nettest"
)

func TestDHTOff(t *testing.T) {
	n := newNode(t, Mode("off"), NoBootstrap())
	other := newHost(t)
	t.Cleanup(func() { other.Close() })
	ctx := t.Context()

	_, err := n.s.Advertise(ctx, "x")
	wantErr(t, "Advertise", err, ErrDHTOff, `advertising "x": the DHT is off`)
	_, err = n.s.FindPeers(ctx, "x")
	wantErr(t, "FindPeers", err, ErrDHTOff, `finding peers for "x": the DHT is off`)
	found, err := n.s.FindAll(ctx, "x")
	wantErr(t, "FindAll", err, ErrDHTOff, `finding peers for "x": the DHT is off`)
	if found == nil || len(found) != 0 {
		t.Errorf("FindAll with the DHT off: got %v, want an empty non-nil slice", found)
	}
	_, err = n.s.FindPeer(ctx, other.ID())
	wantErr(t, "FindPeer", err, ErrDHTOff, "finding peer "+other.ID().String()+": the DHT is off")
	err = n.s.Join("x")
	wantErr(t, "Join", err, ErrDHTOff, `joining "x": the DHT is off`)
	if got := n.s.Joined(); len(got) != 0 {
		t.Errorf("Joined after a refused Join: %v", got)
	}
	if got := n.s.RoutingTableSize(); got != 0 {
		t.Errorf("RoutingTableSize with the DHT off: %d", got)
	}
	for _, p := range n.h.Mux().Protocols() {
		if string(p) == testPrefix+"/kad/1.0.0" {
			t.Errorf("the host serves %s with the DHT off", p)
		}
	}
}

func wantErr(t *testing.T, what string, err, target error, text string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: got error %v, want %v", what, err, target)
		return
	}
	if err.Error() != text {
		t.Errorf("%s: got error %q, want %q", what, err.Error(), text)
	}
}

func TestLifecycle(t *testing.T) {
	h := newHost(t)
	t.Cleanup(func() { h.Close() })
	s, err := New(h, ProtocolPrefix(testPrefix), NoBootstrap(), MDNS(false))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()

	_, err = s.Advertise(ctx, "x")
	wantErr(t, "Advertise before Start", err, ErrNotStarted, `advertising "x": discovery service not started`)
	_, err = s.FindPeer(ctx, h.ID())
	if err == nil || err.Error() != "finding peer "+h.ID().String()+": that is this node" {
		t.Errorf("FindPeer(self): got %v", err)
	}
	if err := s.Join("early"); err != nil { // recorded, started by Start
		t.Fatalf("Join before Start: %v", err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := s.Start(ctx); err == nil || err.Error() != "discovery service already started" {
		t.Errorf("second Start: got %v", err)
	}
	_, err = s.Advertise(ctx, "x")
	wantErr(t, "Advertise with an empty routing table", err, ErrNoPeers,
		`advertising "x": stored in this node's own records only: `+ErrNoPeers.Error())
	_, err = s.FindAll(ctx, "x")
	wantErr(t, "FindAll with an empty routing table", err, ErrNoPeers,
		`finding peers for "x": only this node's own records were searched: `+ErrNoPeers.Error())
	if _, err := s.Advertise(ctx, ""); err == nil || err.Error() != "empty rendezvous string" {
		t.Errorf("Advertise(\"\"): got %v", err)
	}
	if err := s.Join(""); err == nil || err.Error() != "joining: empty rendezvous string" {
		t.Errorf("Join(\"\"): got %v", err)
	}
	if err := s.Join("x"); err != nil {
		t.Fatal(err)
	}
	if err := s.Join("x"); err != nil {
		t.Fatalf("second Join: %v", err)
	}
	if got := s.Joined(); len(got) != 2 || got[0] != "early" || got[1] != "x" {
		t.Errorf("Joined: got %q, want [early x]", got)
	}
	s.Leave("x")
	s.Leave("x")     // not joined any more: no-op
	s.Leave("never") // never joined: no-op
	if got := s.Joined(); len(got) != 1 || got[0] != "early" {
		t.Errorf("Joined after Leave: got %q, want [early]", got)
	}

	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	wantErr(t, "Start after Close", s.Start(ctx), ErrClosed, "discovery service closed")
	wantErr(t, "Join after Close", s.Join("y"), ErrClosed, `joining "y": discovery service closed`)
	_, err = s.FindPeers(ctx, "x")
	wantErr(t, "FindPeers after Close", err, ErrClosed, `finding peers for "x": discovery service closed`)
}

// unreachablePeer returns a peer with a fresh ID whose only address is a
// loopback TCP port nobody listens on.
func unreachablePeer(t *testing.T) peer.AddrInfo {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	a, err := manet.FromNetAddr(nettest.RefusingAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	return peer.AddrInfo{ID: id, Addrs: []ma.Multiaddr{a}}
}

func TestUnreachableBootstrap(t *testing.T) {
	dead := unreachablePeer(t)

	t.Run("only unreachable", func(t *testing.T) {
		n := newNode(t, BootstrapPeers(dead))
		// Start succeeded (newNode checks it). Give the first round time to
		// fail, then check the service is alive and reports why it is idle.
		time.Sleep(200 * time.Millisecond)
		if got := n.s.RoutingTableSize(); got != 0 {
			t.Fatalf("routing table: %d peers, want 0", got)
		}
		_, err := n.s.Advertise(t.Context(), "x")
		wantErr(t, "Advertise", err, ErrNoPeers,
			`advertising "x": stored in this node's own records only: `+ErrNoPeers.Error())
	})

	t.Run("unreachable and reachable", func(t *testing.T) {
		boot := newNode(t, NoBootstrap())
		n := newNode(t, BootstrapPeers(dead, info(boot.h)))
		eventually(t, 30*time.Second, "joined through the reachable bootstrap peer", func() bool {
			return n.s.RoutingTableSize() > 0
		})
		eventually(t, 30*time.Second, "bootstrap node has the new node in its routing table", func() bool {
			return boot.s.RoutingTableSize() > 0
		})
	})
}

func TestStartIsQuickWithSlowBootstrap(t *testing.T) {
	// A bootstrap address that swallows SYNs would make a serial dialer
	// wait; Start must not wait for any dial. We cannot black-hole packets
	// here, so use a listener that accepts TCP but never speaks: the
	// security handshake hangs until the connect timeout.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { l.Close(); <-done })
	go func() { // owned by the test: ends when l closes
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	mute := unreachablePeer(t)
	mute.Addrs = []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port))}

	h := newHost(t)
	t.Cleanup(func() { h.Close() })
	s, err := New(h, ProtocolPrefix(testPrefix), MDNS(false), BootstrapPeers(mute), ConnectTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	start := time.Now()
	if err := s.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("Start returned after %v with a bootstrap peer that never answers", time.Since(start))
	// Close must interrupt the hanging dial rather than wait a minute for it.
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := s.RoutingTableSize(); got != 0 {
		t.Errorf("routing table: %d", got)
	}
}
