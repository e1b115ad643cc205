package client_test

import (
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"syscall"
	"testing"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/p2pd/p2pd/api"
	"github.com/p2pd/p2pd/client"
)

// received is what a sink read from one connection.
type received struct {
	n   int64
	sum [32]byte
	err error
}

// startSink runs a TCP service on loopback that reads each connection to
// the end, then writes reply and closes it. Results arrive on the channel
// in connection order.
func startSink(t *testing.T, reply []byte) (ma.Multiaddr, <-chan received) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan received, 16)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h := sha256.New()
			n, err := io.Copy(h, c)
			if err == nil {
				_, err = c.Write(reply)
			}
			c.Close()
			r := received{n: n, err: err}
			copy(r.sum[:], h.Sum(nil))
			out <- r
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	m, err := manet.FromNetAddr(ln.Addr())
	if err != nil {
		t.Fatal(err)
	}
	return m, out
}

// payload is a deterministic pseudo-random byte source of a given length.
type payload struct {
	left int64
	rng  *rand.ChaCha8
}

func newPayload(n int64, seed byte) *payload {
	return &payload{left: n, rng: rand.NewChaCha8([32]byte{seed})}
}

func (p *payload) Read(b []byte) (int, error) {
	if p.left == 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.left {
		b = b[:p.left]
	}
	p.rng.Read(b)
	p.left -= int64(len(b))
	return len(b), nil
}

// sendThrough connects to addr, sends n pseudo-random bytes, half-closes,
// and reads the answer to its end. It returns the SHA-256 of what it sent
// and of what it read, and how much it read.
func sendThrough(addr string, n int64) (sentSum, gotSum [32]byte, got int64, err error) {
	m, err := ma.NewMultiaddr(addr)
	if err != nil {
		return sentSum, gotSum, 0, err
	}
	c, err := manet.Dial(m)
	if err != nil {
		return sentSum, gotSum, 0, err
	}
	defer c.Close()
	var sent, read hash.Hash = sha256.New(), sha256.New()
	if _, err := io.CopyBuffer(io.MultiWriter(c, sent), newPayload(n, 7), make([]byte, 256<<10)); err != nil {
		return sentSum, gotSum, 0, fmt.Errorf("sending: %w", err)
	}
	if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		return sentSum, gotSum, 0, err
	}
	got, err = io.Copy(read, c)
	if err != nil {
		return sentSum, gotSum, got, fmt.Errorf("receiving: %w", err)
	}
	copy(sentSum[:], sent.Sum(nil))
	copy(gotSum[:], read.Sum(nil))
	return sentSum, gotSum, got, nil
}

// nextOf reads events until one of type typ (for which match, if set, is
// true) and returns it with every event read on the way.
func nextOf(t *testing.T, es *client.EventStream, typ string, match func(api.Event) bool) (api.Event, []api.Event) {
	t.Helper()
	var seen []api.Event
	for {
		ev, err := es.Next()
		if err != nil {
			t.Fatalf("waiting for %s from %s: %v (seen %v)", typ, es.Daemon(), err, types(seen))
		}
		seen = append(seen, ev)
		if ev.Type == typ && (match == nil || match(ev)) {
			return ev, seen
		}
	}
}

func types(evs []api.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = fmt.Sprintf("%d:%s", ev.Seq, ev.Type)
	}
	return out
}

// TestEventsShowAForwardedConnection opens a forward from daemon A to a
// listen on daemon B, pushes one connection through it and closes it. Both
// daemons' event streams show, in order, the stream opened and closed with
// the exact byte counts that went each way, and A's shows the forward added
// and removed around them.
func TestEventsShowAForwardedConnection(t *testing.T) {
	const up, down = 3<<20 + 123, 1<<20 + 7 // bytes client -> service, service -> client
	reply := make([]byte, down)
	newPayload(down, 9).Read(reply)
	replySum := sha256.Sum256(reply)

	a, b := startNode(t, "/ip4/127.0.0.1/tcp/0"), startNode(t, "/ip4/127.0.0.1/tcp/0")
	ca, cb := newClient(t, &client.Config{Repo: a.repo}), newClient(t, &client.Config{Repo: b.repo})
	ctx := testContext(t)

	sink, results := startSink(t, reply)
	if _, err := cb.Listen(ctx, api.ListenRequest{Protocol: "/x/events-test", Target: sink.String()}); err != nil {
		t.Fatal(err)
	}
	bid, err := cb.ID(ctx)
	if err != nil || len(bid.Addresses) == 0 {
		t.Fatalf("ID of B = %+v, %v", bid, err)
	}

	esA, err := ca.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer esA.Close()
	esB, err := cb.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer esB.Close()

	fwd, err := ca.Forward(ctx, api.ForwardRequest{Protocol: "/x/events-test", Listen: "/ip4/127.0.0.1/tcp/0", Target: bid.Addresses[0]})
	if err != nil {
		t.Fatal(err)
	}
	sentSum, gotSum, got, err := sendThrough(fwd.ListenAddress, up)
	if err != nil {
		t.Fatal(err)
	}
	r := <-results
	if r.err != nil || r.n != up || r.sum != sentSum {
		t.Fatalf("the service read %d bytes (err %v), want %d with the SHA-256 sent", r.n, r.err, up)
	}
	if got != down || gotSum != replySum {
		t.Fatalf("the client read %d bytes, want the %d-byte reply with its SHA-256", got, down)
	}

	// A: listener_added, stream_opened, stream_closed, then (after the
	// close below) listener_removed.
	added, before := nextOf(t, esA, api.EventListenerAdded, nil)
	if added.Listener == nil || added.Listener.Kind != api.KindForward || added.Listener.ListenAddress != fwd.ListenAddress {
		t.Errorf("A's listener_added = %+v, want the forward on %s", added.Listener, fwd.ListenAddress)
	}
	opened, seen := nextOf(t, esA, api.EventStreamOpened, nil)
	closed, seen2 := nextOf(t, esA, api.EventStreamClosed, func(ev api.Event) bool { return ev.Stream.ID == opened.Stream.ID })
	seen = append(append(before, seen...), seen2...)
	if opened.Stream.Protocol != "/x/events-test" || opened.Peer != b.id {
		t.Errorf("A's stream_opened = %+v, want /x/events-test to %s", opened.Stream, b.id)
	}
	if closed.Stream.BytesOut != up || closed.Stream.BytesIn != down {
		t.Errorf("A's stream_closed counts out=%d in=%d, want out=%d in=%d", closed.Stream.BytesOut, closed.Stream.BytesIn, up, down)
	}
	if closed.Error != "" {
		t.Errorf("A's stream_closed has error %q, want a clean close", closed.Error)
	}
	if n, err := ca.Close(ctx, api.CloseRequest{Protocol: "/x/events-test"}); err != nil || n != 1 {
		t.Fatalf("Close = %d, %v; want 1", n, err)
	}
	removed, seen3 := nextOf(t, esA, api.EventListenerRemoved, nil)
	seen = append(seen, seen3...)
	if removed.Listener == nil || removed.Listener.ListenAddress != fwd.ListenAddress {
		t.Errorf("A's listener_removed = %+v, want the forward on %s", removed.Listener, fwd.ListenAddress)
	}
	if !(added.Seq < opened.Seq && opened.Seq < closed.Seq && closed.Seq < removed.Seq) {
		t.Errorf("A's events out of order: added %d, opened %d, closed %d, removed %d", added.Seq, opened.Seq, closed.Seq, removed.Seq)
	}
	sawPeer := false
	for _, ev := range seen {
		if ev.Type == api.EventPeerConnected && ev.Peer == b.id {
			sawPeer = true
		}
	}
	if !sawPeer {
		t.Errorf("A's events %v lack peer_connected for B", types(seen))
	}

	// B: the same stream seen from the other side.
	openedB, _ := nextOf(t, esB, api.EventStreamOpened, nil)
	closedB, _ := nextOf(t, esB, api.EventStreamClosed, func(ev api.Event) bool { return ev.Stream.ID == openedB.Stream.ID })
	if openedB.Peer != a.id || openedB.Stream.Protocol != "/x/events-test" {
		t.Errorf("B's stream_opened = %+v, want /x/events-test from %s", openedB.Stream, a.id)
	}
	if closedB.Stream.BytesIn != up || closedB.Stream.BytesOut != down || closedB.Seq <= openedB.Seq {
		t.Errorf("B's stream_closed (seq %d after %d) counts in=%d out=%d, want in=%d out=%d",
			closedB.Seq, openedB.Seq, closedB.Stream.BytesIn, closedB.Stream.BytesOut, up, down)
	}
}

// TestEventsShowPeersComingAndGoing starts daemon B in a rendezvous room,
// then A bootstrapping from B into the same room: B's event stream shows A
// connected and discovered under the room's name, then disconnected once A
// is stopped.
func TestEventsShowPeersComingAndGoing(t *testing.T) {
	const room = "clienttest-room"
	b := startNode(t, "/ip4/127.0.0.1/tcp/0", "--rendezvous", room)
	cb := newClient(t, &client.Config{Repo: b.repo})
	ctx := testContext(t)
	es, err := cb.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer es.Close()
	bid, err := cb.ID(ctx)
	if err != nil || len(bid.Addresses) == 0 {
		t.Fatalf("ID of B = %+v, %v", bid, err)
	}

	a := startNode(t, "/ip4/127.0.0.1/tcp/0", "--rendezvous", room, "--bootstrap", bid.Addresses[0])
	fromA := func(ev api.Event) bool { return ev.Peer == a.id }
	connected, _ := nextOf(t, es, api.EventPeerConnected, fromA)
	if len(connected.Addresses) == 0 {
		t.Errorf("peer_connected for A has no address")
	}
	found, _ := nextOf(t, es, api.EventPeerDiscovered, fromA)
	if found.Rendezvous != room || len(found.Addresses) == 0 {
		t.Errorf("peer_discovered = %+v, want A found under %q with addresses", found, room)
	}
	if err := a.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	gone, _ := nextOf(t, es, api.EventPeerDisconnected, fromA)
	if gone.Seq <= connected.Seq {
		t.Errorf("peer_disconnected (seq %d) before peer_connected (seq %d)", gone.Seq, connected.Seq)
	}
}
