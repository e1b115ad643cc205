package listeners

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/p2pd/p2pd/internal/nettest"
)

const testProto = protocol.ID("/x/test")

// listenOn makes n serve testProto by dialling svc.
func listenOn(t testing.TB, n *node, svc ma.Multiaddr) Info {
	t.Helper()
	info, err := n.reg.Listen(t.Context(), ListenRequest{Protocol: testProto, Target: svc})
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	return info
}

// forwardTo makes n forward a fresh loopback port to target over testProto.
func forwardTo(t testing.TB, n *node, target ma.Multiaddr) Info {
	t.Helper()
	info, err := n.reg.Forward(t.Context(), ForwardRequest{
		Protocol: testProto,
		Listen:   mustAddr(t, "/ip4/127.0.0.1/tcp/0"),
		Target:   target,
	})
	if err != nil {
		t.Fatalf("forward: %v", err)
	}
	return info
}

// addrTarget returns ADDR/p2p/ID of n's first address.
func addrTarget(t testing.TB, n *node) ma.Multiaddr {
	t.Helper()
	return n.h.Addrs()[0].Encapsulate(p2pAddr(t, n.h.ID()))
}

// randomPeer returns the ID of a peer that does not exist.
func randomPeer(t testing.TB) peer.ID {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// closedPort returns a loopback TCP address nothing listens on.
func closedPort(t testing.TB) ma.Multiaddr {
	t.Helper()
	a, err := manet.FromNetAddr(nettest.RefusingAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestTransfer64MiBBothWays sends 64 MiB each way at the same time through
// forward A -> listen B -> TCP service and compares SHA-256 on both ends.
func TestTransfer64MiBBothWays(t *testing.T) {
	const size = 64 << 20
	type result struct {
		sum [32]byte
		n   int64
		err error
	}
	svcGot := make(chan result, 1)
	svcSent := make(chan result, 1)
	svc := newService(t, func(c net.Conn) {
		sent := make(chan result, 1)
		go func() {
			sum, err := sendHashed(c, source(2, size))
			if err == nil {
				err = c.(*net.TCPConn).CloseWrite()
			}
			sent <- result{sum: sum, err: err}
		}()
		sum, n, err := recvHashed(c)
		svcGot <- result{sum, n, err}
		svcSent <- <-sent // c stays open until the sender is done
	})

	a, b := newNode(t), newNode(t)
	listenOn(t, b, svc.addr)
	fwd := forwardTo(t, a, addrTarget(t, b))

	c, err := manet.Dial(fwd.ListenAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * testTimeout))
	clientSent := make(chan result, 1)
	go func() {
		sum, err := sendHashed(c, source(1, size))
		if err == nil {
			err = c.(interface{ CloseWrite() error }).CloseWrite()
		}
		clientSent <- result{sum: sum, err: err}
	}()
	gotSum, gotN, err := recvHashed(c)
	if err != nil {
		t.Fatalf("client reading: %v", err)
	}
	sent := <-clientSent
	if sent.err != nil {
		t.Fatalf("client writing: %v", sent.err)
	}
	atSvc := <-svcGot
	if atSvc.err != nil {
		t.Fatalf("service reading: %v", atSvc.err)
	}
	fromSvc := <-svcSent
	if fromSvc.err != nil {
		t.Fatalf("service writing: %v", fromSvc.err)
	}

	if atSvc.n != size || atSvc.sum != sent.sum {
		t.Errorf("client -> service: service got %d bytes, sha256 match %v; want %d bytes, match", atSvc.n, atSvc.sum == sent.sum, size)
	}
	if gotN != size || gotSum != fromSvc.sum {
		t.Errorf("service -> client: client got %d bytes, sha256 match %v; want %d bytes, match", gotN, gotSum == fromSvc.sum, size)
	}
}

// TestForwardTargets checks the three ways a forward finds its target.
func TestForwardTargets(t *testing.T) {
	tests := []struct {
		name string
		// withFinder gives A a PeerFinder that knows B.
		withFinder bool
		// connect connects A to B before the forward is used.
		connect bool
		// addrTarget uses ADDR/p2p/ID instead of /p2p/ID.
		addrTarget bool
	}{
		{name: "p2p target, already connected", connect: true},
		{name: "addr target, never met", addrTarget: true},
		{name: "p2p target, unknown address, found by the peer finder", withFinder: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			svc := newService(t, echo)
			b := newNode(t)
			f := &finder{peers: map[peer.ID]peer.AddrInfo{b.h.ID(): addrInfo(b.h)}}
			var opts []Option
			if tc.withFinder {
				opts = append(opts, WithPeerFinder(f))
			}
			a := newNode(t, opts...)
			listenOn(t, b, svc.addr)
			if tc.connect {
				if err := a.h.Connect(t.Context(), addrInfo(b.h)); err != nil {
					t.Fatal(err)
				}
			}
			if !tc.connect {
				if got := a.h.Peerstore().Addrs(b.h.ID()); len(got) != 0 {
					t.Fatalf("A already knows B's addresses %v", got)
				}
			}
			target := p2pAddr(t, b.h.ID())
			if tc.addrTarget {
				target = addrTarget(t, b)
			}
			fwd := forwardTo(t, a, target)
			if !fwd.TargetAddr.Equal(target) {
				t.Errorf("TargetAddr = %s, want %s as given", fwd.TargetAddr, target)
			}

			checkEcho(t, fwd.ListenAddr, []byte("hello through the tunnel"))
			if tc.withFinder && f.lookups() == 0 {
				t.Error("the peer finder was never asked")
			}

			// Forget B entirely: a second connection must dial again, from
			// the addresses kept with the target or a new lookup.
			if !tc.connect {
				if err := a.h.Network().ClosePeer(b.h.ID()); err != nil {
					t.Fatal(err)
				}
				waitFor(t, "A to drop its connection to B", func() bool {
					return len(a.h.Network().ConnsToPeer(b.h.ID())) == 0
				})
				forget(t, a, b.h.ID())
				before := f.lookups()
				checkEcho(t, fwd.ListenAddr, []byte("and again after forgetting the peer"))
				if tc.withFinder && f.lookups() == before {
					t.Error("the peer finder was not asked again")
				}
			}
			if got := svc.accepted.Load(); got != int64(1+btoi(!tc.connect)) {
				t.Errorf("service accepted %d connections, want %d", got, 1+btoi(!tc.connect))
			}
			if got := a.reg.List()[0].LastError; got != "" {
				t.Errorf("LastError = %q after successful dials", got)
			}
		})
	}
}

// forget clears A's addresses of id once A is no longer connected to it.
// Identify re-adds "recently connected" addresses from a goroutine after a
// disconnect, so clear until the address book stays empty.
func forget(t *testing.T, a *node, id peer.ID) {
	t.Helper()
	empty := 0
	waitFor(t, "the peerstore to forget the peer", func() bool {
		a.h.Peerstore().ClearAddrs(id)
		if len(a.h.Peerstore().Addrs(id)) == 0 {
			empty++
		} else {
			empty = 0
		}
		return empty >= 3
	})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestDialFailure checks that a failing dial resets the local connection and
// is kept in LastError.
func TestDialFailure(t *testing.T) {
	tests := []struct {
		name string
		// setup returns the forwarding node (A), the node whose entry
		// records the error, and the forward's target.
		setup   func(t *testing.T) (a, failing *node, target ma.Multiaddr)
		wantErr string // a part of LastError
	}{
		{
			name: "unreachable address",
			setup: func(t *testing.T) (*node, *node, ma.Multiaddr) {
				a := newNode(t)
				return a, a, closedPort(t).Encapsulate(p2pAddr(t, randomPeer(t)))
			},
			wantErr: "connecting to peer: failed to dial",
		},
		{
			name: "no address and no peer finder",
			setup: func(t *testing.T) (*node, *node, ma.Multiaddr) {
				a := newNode(t)
				return a, a, p2pAddr(t, randomPeer(t))
			},
			wantErr: "no known addresses for peer",
		},
		{
			name: "the peer finder does not know the peer",
			setup: func(t *testing.T) (*node, *node, ma.Multiaddr) {
				a := newNode(t, WithPeerFinder(&finder{}))
				return a, a, p2pAddr(t, randomPeer(t))
			},
			wantErr: "looking up peer: routing: not found",
		},
		{
			name: "the peer does not serve the protocol",
			setup: func(t *testing.T) (*node, *node, ma.Multiaddr) {
				a, b := newNode(t), newNode(t)
				return a, a, addrTarget(t, b)
			},
			wantErr: "it does not serve /x/test (no `p2pd listen /x/test` there)",
		},
		{
			name: "the listen target is down",
			setup: func(t *testing.T) (*node, *node, ma.Multiaddr) {
				a, b := newNode(t), newNode(t)
				listenOn(t, b, closedPort(t))
				return a, b, addrTarget(t, b)
			},
			wantErr: "dialling target: dial tcp4 127.0.0.1:",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			logs := captureLogs(t)
			a, failing, target := tc.setup(t)
			fwd := forwardTo(t, a, target)
			started := time.Now()

			got, err := roundTrip(t, fwd.ListenAddr, []byte("anyone there?"))
			if len(got) != 0 {
				t.Errorf("client read %q, want nothing", got)
			}
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("client error = %v, want a connection reset", err)
			}

			var entry Info
			waitFor(t, "LastError to be set", func() bool {
				entry = failing.reg.List()[0]
				return entry.LastError != ""
			})
			if !strings.Contains(entry.LastError, tc.wantErr) {
				t.Errorf("LastError = %q, want it to contain %q", entry.LastError, tc.wantErr)
			}
			// A forward logs its target peer, a listen the remote peer.
			_, wantPeer := peer.SplitAddr(target)
			if failing != a {
				wantPeer = a.h.ID()
			}
			waitFor(t, "the failure to be logged", func() bool {
				return logs.has(map[string]string{"peer": wantPeer.String(), "protocol": string(testProto), "err": entry.LastError})
			})
			if entry.LastErrorAt.Before(started) {
				t.Errorf("LastErrorAt = %v, before the dial started at %v", entry.LastErrorAt, started)
			}
		})
	}
}

// TestAllowPeers checks that a listen with AllowPeers refuses other peers
// before dialling its target.
func TestAllowPeers(t *testing.T) {
	logs := captureLogs(t)
	svc := newService(t, echo)
	a, b, c := newNode(t), newNode(t), newNode(t)
	if _, err := b.reg.Listen(t.Context(), ListenRequest{
		Protocol:   testProto,
		Target:     svc.addr,
		AllowPeers: []peer.ID{c.h.ID()},
	}); err != nil {
		t.Fatal(err)
	}

	refused := forwardTo(t, a, addrTarget(t, b))
	got, err := roundTrip(t, refused.ListenAddr, []byte("let me in"))
	if len(got) != 0 || err == nil {
		t.Errorf("refused peer: read %q, err %v; want nothing and an error", got, err)
	}
	if n := svc.accepted.Load(); n != 0 {
		t.Fatalf("the target accepted %d connections for a refused peer, want 0", n)
	}
	waitFor(t, "the refusal to be logged", func() bool {
		return logs.has(map[string]string{"peer": a.h.ID().String(), "protocol": string(testProto)})
	})

	allowed := forwardTo(t, c, addrTarget(t, b))
	checkEcho(t, allowed.ListenAddr, []byte("an allowed peer"))
	if n := svc.accepted.Load(); n != 1 {
		t.Errorf("the target accepted %d connections, want 1 (the allowed peer's)", n)
	}
	if l := b.reg.List()[0]; len(l.AllowPeers) != 1 || l.AllowPeers[0] != c.h.ID() {
		t.Errorf("AllowPeers = %v, want [%s]", l.AllowPeers, c.h.ID())
	}
}

// TestReportPeerID checks that the target first receives "<peer id>\n".
func TestReportPeerID(t *testing.T) {
	lines := make(chan string, 1)
	svc := newService(t, func(c net.Conn) {
		line, br, err := readLine(c)
		if err != nil {
			line = "error: " + err.Error()
		}
		lines <- line
		_, _ = io.Copy(c, br)
		_ = c.(*net.TCPConn).CloseWrite()
	})
	a, b := newNode(t), newNode(t)
	if _, err := b.reg.Listen(t.Context(), ListenRequest{
		Protocol:     testProto,
		Target:       svc.addr,
		ReportPeerID: true,
	}); err != nil {
		t.Fatal(err)
	}
	fwd := forwardTo(t, a, addrTarget(t, b))
	checkEcho(t, fwd.ListenAddr, []byte("payload after the id"))
	if got, want := <-lines, a.h.ID().String()+"\n"; got != want {
		t.Errorf("first line = %q, want %q", got, want)
	}
}

// TestForwardPortZero checks that a forward on port 0 reports, and lists,
// the real port.
func TestForwardPortZero(t *testing.T) {
	svc := newService(t, echo)
	a, b := newNode(t), newNode(t)
	listenOn(t, b, svc.addr)
	fwd := forwardTo(t, a, addrTarget(t, b))
	port, err := fwd.ListenAddr.ValueForProtocol(ma.P_TCP)
	if err != nil || port == "0" || port == "" {
		t.Fatalf("ListenAddr = %s (port %q, %v), want a real port", fwd.ListenAddr, port, err)
	}
	if l := a.reg.List(); len(l) != 1 || !l[0].ListenAddr.Equal(fwd.ListenAddr) {
		t.Errorf("List = %v, want one entry on %s", l, fwd.ListenAddr)
	}
	checkEcho(t, fwd.ListenAddr, []byte("through the real port"))
}

// TestCloseLeavesStreamsOpen checks that closing both ends' listeners does
// not end a stream already open.
func TestCloseLeavesStreamsOpen(t *testing.T) {
	svc := newService(t, echo)
	a, b := newNode(t), newNode(t)
	listenOn(t, b, svc.addr)
	fwd := forwardTo(t, a, addrTarget(t, b))

	c, err := manet.Dial(fwd.ListenAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(testTimeout))
	exchange := func(msg string) {
		t.Helper()
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatalf("writing %q: %v", msg, err)
		}
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
			t.Fatalf("reading back %q: got %q, %v", msg, buf, err)
		}
	}
	exchange("before close")

	for _, n := range []*node{a, b} {
		if got, err := n.reg.Close(Match{All: true}); err != nil || got != 1 {
			t.Fatalf("Close(all) = %d, %v; want 1, nil", got, err)
		}
	}
	if !refused(t, fwd.ListenAddr) {
		t.Error("the closed forward still accepts connections")
	}
	if a.s.Len() != 1 || b.s.Len() != 1 {
		t.Errorf("open streams after close: A %d, B %d; want 1 each", a.s.Len(), b.s.Len())
	}

	exchange("after close")
	if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if rest, err := io.ReadAll(c); err != nil || len(rest) != 0 {
		t.Errorf("end of stream: read %q, %v; want a clean EOF", rest, err)
	}
}

// TestShutdown checks that Shutdown cancels a dial in progress, stops
// everything, refuses new entries, skips the hooks and is safe twice.
func TestShutdown(t *testing.T) {
	bf := &blockingFinder{started: make(chan struct{}, 1)}
	changes := 0
	var removed []Kind
	n := newNode(t, WithPeerFinder(bf), WithOnChange(func() { changes++ }),
		WithOnRemove(func(i Info) { removed = append(removed, i.Kind) }))
	fwd := forwardTo(t, n, p2pAddr(t, randomPeer(t)))
	listenOn(t, n, mustAddr(t, "/ip4/127.0.0.1/tcp/9"))
	if changes != 2 {
		t.Fatalf("OnChange called %d times for two additions", changes)
	}

	c, err := manet.Dial(fwd.ListenAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case <-bf.started:
	case <-time.After(testTimeout):
		t.Fatal("the forward never looked the peer up")
	}

	done := make(chan error, 1)
	go func() { done <- n.reg.Shutdown() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("Shutdown did not return while a dial was in progress")
	}

	_ = c.SetDeadline(time.Now().Add(testTimeout))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("client of the cancelled dial read err %v, want a reset", err)
	}
	if l := n.reg.List(); len(l) != 0 {
		t.Errorf("List after Shutdown = %v, want empty", l)
	}
	if !refused(t, fwd.ListenAddr) {
		t.Error("the forward still accepts connections after Shutdown")
	}
	for _, p := range n.h.Mux().Protocols() {
		if p == testProto {
			t.Errorf("%s is still served after Shutdown", p)
		}
	}
	if changes != 2 {
		t.Errorf("OnChange called %d times, want 2 (Shutdown must not call it)", changes)
	}
	if !slices.Equal(removed, []Kind{KindForward, KindListen}) {
		t.Errorf("OnRemove saw %v, want [forward listen]", removed)
	}
	if got := n.reg.List(); got == nil {
		t.Error("List returned nil, want an empty slice")
	}
	if _, err := n.reg.Forward(context.Background(), ForwardRequest{
		Protocol: testProto, Listen: mustAddr(t, "/ip4/127.0.0.1/tcp/0"), Target: p2pAddr(t, randomPeer(t)),
	}); !errors.Is(err, ErrClosed) {
		t.Errorf("Forward after Shutdown: %v, want ErrClosed", err)
	}
	if err := n.reg.Shutdown(); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
	if len(removed) != 2 {
		t.Errorf("second Shutdown reported %d more removals", len(removed)-2)
	}
}
