package chat

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestNewErrors(t *testing.T) {
	h := newHost(t)
	tests := []struct {
		name    string
		room    string
		opts    []Option
		wantErr string
	}{
		{"empty room", "", nil, "invalid room name: empty"},
		{"control character", "a\nb", nil, `invalid room name "a\nb": contains a control character`},
		{"invalid utf-8", "a\xffb", nil, "invalid room name: not valid UTF-8"},
		{"room too long", strings.Repeat("x", MaxRoomBytes+1), nil, "invalid room name: 513 bytes, the limit is 512"},
		{"line limit zero", "r", []Option{MaxLineBytes(0)}, "line size limit 0: want 1 to 65536 bytes"},
		{"line limit too big", "r", []Option{MaxLineBytes(MaxMaxLineBytes + 1)}, "line size limit 65537: want 1 to 65536 bytes"},
		{"handshake timeout", "r", []Option{HandshakeTimeout(0)}, "handshake timeout 0s: must be positive"},
		{"write timeout", "r", []Option{WriteTimeout(-time.Second)}, "write timeout -1s: must be positive"},
		{"ok", "team chat ☕", []Option{MaxLineBytes(10), HandshakeTimeout(time.Second), WriteTimeout(time.Second)}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := New(h, tc.room, tc.opts...)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				r.Close()
				return
			}
			if err == nil || err.Error() != tc.wantErr {
				t.Fatalf("New error = %v, want %q", err, tc.wantErr)
			}
		})
	}
	if _, err := New(nil, "r"); err == nil || err.Error() != "chat needs a host: got nil" {
		t.Fatalf("New(nil) error = %v", err)
	}
}

func TestLifecycle(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	r, err := New(h, "r")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Send(ctx, "hi"); !errors.Is(err, ErrNotStarted) {
		t.Fatalf("Send before Start: %v, want ErrNotStarted", err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx); err == nil || err.Error() != "chat room already started" {
		t.Fatalf("second Start: %v", err)
	}
	if n, err := r.Send(ctx, "hi"); err != nil || n != 0 {
		t.Fatalf("Send to an empty room = %d, %v; want 0, nil", n, err)
	}
	if peers, err := r.Peers(ctx); err != nil || len(peers) != 0 {
		t.Fatalf("Peers of an empty room = %v, %v", peers, err)
	}
	r.Close()
	r.Close() // twice is fine
	if _, ok := <-r.Events(); ok {
		t.Fatal("Events not closed by Close")
	}
	if _, err := r.Send(ctx, "hi"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Close: %v, want ErrClosed", err)
	}
	if err := r.Start(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Close: %v, want ErrClosed", err)
	}
	if slices.Contains(h.Mux().Protocols(), ProtocolID) {
		t.Fatal("chat protocol still registered after Close")
	}

	// A room whose context ends stops on its own.
	r2, err := New(h, "r2")
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	if err := r2.Start(cctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := r2.Send(ctx, "hi"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after the context ended: %v, want ErrClosed", err)
	}
	r2.Close()
}

func TestSendChecks(t *testing.T) {
	h := newHost(t)
	r := newRoom(t, h, "r")
	tests := []struct {
		name, text, wantErr string
		is                  error
	}{
		{"empty", "", "empty message", ErrEmpty},
		{"line feed", "a\nb", "a message cannot contain a line break", ErrLineBreak},
		{"carriage return", "a\rb", "a message cannot contain a line break", ErrLineBreak},
		{"too long", strings.Repeat("x", 5000), "line too long: 5000 bytes, the limit is 4096", ErrLineTooLong},
		{"at the limit", strings.Repeat("x", DefaultMaxLineBytes), "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.Send(context.Background(), tc.text)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Send: %v", err)
				}
				return
			}
			if err == nil || err.Error() != tc.wantErr || !errors.Is(err, tc.is) {
				t.Fatalf("Send error = %v, want %q (wrapping %v)", err, tc.wantErr, tc.is)
			}
		})
	}
}

func TestTwoPeersTalk(t *testing.T) {
	ha, hb := newHost(t), newHost(t)
	a, b := newRoom(t, ha, "lobby"), newRoom(t, hb, "lobby")
	connect(t, ha, hb)
	a.waitJoined(hb.ID())
	b.waitJoined(ha.ID())

	if n := a.send("hello from a"); n != 1 {
		t.Fatalf("Send reached %d peers, want 1", n)
	}
	b.waitMessage(ha.ID(), "hello from a")
	b.send("hello from b")
	a.waitMessage(hb.ID(), "hello from b")

	peers, err := a.Peers(context.Background())
	if err != nil || len(peers) != 1 || peers[0] != hb.ID() {
		t.Fatalf("a.Peers() = %v, %v; want [%s]", peers, err, hb.ID())
	}
	waitStreams(t, ha, hb.ID(), 1)
	if !ha.ConnManager().IsProtected(hb.ID(), protectTag) || !hb.ConnManager().IsProtected(ha.ID(), protectTag) {
		t.Fatal("the connection of a peer in the room is not protected from trimming")
	}
}

// TestThreePeersExactlyOnce connects three rooms pairwise from both ends at
// once and checks that every pair ends up with one session, one join each
// way, and that every line reaches each other peer exactly once.
func TestThreePeersExactlyOnce(t *testing.T) {
	hosts := []host.Host{newHost(t), newHost(t), newHost(t)}
	rooms := make([]*testRoom, len(hosts))
	for i, h := range hosts {
		rooms[i] = newRoom(t, h, "trio")
	}
	var wg sync.WaitGroup
	for i := range hosts {
		for j := range hosts {
			if i != j {
				wg.Go(func() { connect(t, hosts[i], hosts[j]) })
			}
		}
	}
	wg.Wait()
	for i, r := range rooms {
		for j, h := range hosts {
			if i != j {
				r.waitJoined(h.ID())
			}
		}
	}
	for i, r := range rooms {
		if n := r.send(fmt.Sprintf("line from %d", i)); n != 2 {
			t.Fatalf("room %d: Send reached %d peers, want 2", i, n)
		}
		r.send(fmt.Sprintf("end of %d", i))
	}
	for i, r := range rooms {
		for j, h := range hosts {
			if i == j {
				continue
			}
			// A session delivers in order: once the end marker is in, so
			// is every line sent before it on that session.
			r.waitMessage(h.ID(), fmt.Sprintf("end of %d", j))
			if n := r.count(is(Message, h.ID(), fmt.Sprintf("line from %d", j))); n != 1 {
				t.Errorf("room %d got the line from %d %d times, want once", i, j, n)
			}
			if n := r.count(is(PeerJoined, h.ID(), "")); n != 1 {
				t.Errorf("room %d saw %d join %d times, want once", i, j, n)
			}
			if n := r.count(is(PeerLeft, h.ID(), "")); n != 0 {
				t.Errorf("room %d saw %d leave %d times, want never", i, j, n)
			}
			if n := chatStreams(hosts[i], h.ID()); n != 1 {
				t.Errorf("hosts %d and %d share %d chat streams, want 1", i, j, n)
			}
		}
		if n := r.count(func(ev Event) bool { return ev.Peer == r.Self() }); n != 0 {
			t.Errorf("room %d reported %d events about itself", i, n)
		}
	}
}

func TestOtherRoomRefused(t *testing.T) {
	ha, hb := newHost(t), newHost(t)
	refused := make(chan peer.ID, 4)
	hook := func(r *Room) {
		r.cfg.onDial = func(p peer.ID, err error) {
			if errors.Is(err, errRefused) {
				refused <- p
			}
		}
	}
	a := newRoom(t, ha, "red", hook)
	b := newRoom(t, hb, "blue", hook)
	connect(t, ha, hb)
	// Exactly one of the two opens a session; the other refuses it.
	select {
	case p := <-refused:
		if p != ha.ID() && p != hb.ID() {
			t.Fatalf("refusal names %s", p)
		}
	case <-time.After(waitLimit):
		t.Fatal("no session attempt was refused")
	}
	for _, r := range []*testRoom{a, b} {
		if peers, _ := r.Peers(context.Background()); len(peers) != 0 {
			t.Errorf("room %s has members %v, want none", r.Name(), peers)
		}
		if n := r.count(func(Event) bool { return true }); n != 0 {
			t.Errorf("room %s reported %d events: %s", r.Name(), n, r.dump())
		}
	}

	// The answer a stranger gets, at the protocol level.
	hx := newHost(t)
	connect(t, hx, ha)
	s, lr, answer := rawStream(t, hx, ha.ID(), "blue")
	if answer != "refused another room" {
		t.Fatalf("answer to a hello for another room = %q", answer)
	}
	if _, err := lr.next(100); err == nil {
		t.Fatal("stream still open after the refusal")
	}
	s.Close()
}

func TestPeerSendsTooLongLine(t *testing.T) {
	ha, hx := newHost(t), newHost(t)
	a := newRoom(t, ha, "r")
	connect(t, hx, ha)
	s, _, answer := rawStream(t, hx, ha.ID(), "r")
	if answer != "welcome" {
		t.Fatalf("answer to hello = %q, want welcome", answer)
	}
	a.waitJoined(hx.ID())
	msg := strings.Repeat("x", 5000) + "\n" + "\x1b[31mred\x1b[0m\tand\u202eevil\n" + "after\n"
	if _, err := s.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	a.waitMessage(hx.ID(), "after")
	notice := a.waitEvent(func(ev Event) bool { return ev.Kind == Notice }, "notice")
	if want := "refused a line from the peer: line too long: 5000 bytes, the limit is 4096"; notice.Err == nil || notice.Err.Error() != want || !errors.Is(notice.Err, ErrLineTooLong) {
		t.Fatalf("notice error = %v, want %q", notice.Err, want)
	}
	a.waitMessage(hx.ID(), "\uFFFD[31mred\uFFFD[0m andevil")
	order := []int{
		a.index(is(PeerJoined, hx.ID(), "")),
		a.index(func(ev Event) bool { return ev.Kind == Notice }),
		a.index(is(Message, hx.ID(), "\uFFFD[31mred\uFFFD[0m andevil")),
		a.index(is(Message, hx.ID(), "after")),
	}
	for i := 1; i < len(order); i++ {
		if order[i] <= order[i-1] {
			t.Fatalf("events out of order: %s", a.dump())
		}
	}
	if n := a.count(func(ev Event) bool { return ev.Kind == Message && strings.Contains(ev.Text, "xxx") }); n != 0 {
		t.Fatalf("the over-long line was delivered")
	}
}

func TestLeaveAndRejoin(t *testing.T) {
	ha, hb, hc := newHost(t), newHost(t), newHost(t)
	a, b := newRoom(t, ha, "r"), newRoom(t, hb, "r")
	c := newRoom(t, hc, "r")
	connect(t, ha, hb)
	connect(t, ha, hc)
	connect(t, hb, hc)
	for _, x := range []struct {
		r  *testRoom
		ps []peer.ID
	}{{a, []peer.ID{hb.ID(), hc.ID()}}, {b, []peer.ID{ha.ID(), hc.ID()}}, {c, []peer.ID{ha.ID(), hb.ID()}}} {
		for _, p := range x.ps {
			x.r.waitJoined(p)
		}
	}

	// c leaves the room cleanly; its last line still arrives.
	c.send("bye from c")
	c.Close()
	for _, r := range []*testRoom{a, b} {
		r.waitLeft(hc.ID())
		if r.index(is(Message, hc.ID(), "bye from c")) > r.index(is(PeerLeft, hc.ID(), "")) {
			t.Errorf("%s: the last line arrived after the leave: %s", ShortID(r.Self()), r.dump())
		}
		if ev := r.waitEvent(is(PeerLeft, hc.ID(), ""), "leave"); ev.Err != nil {
			t.Errorf("clean leave reported error %v", ev.Err)
		}
	}
	if ha.ConnManager().IsProtected(hc.ID(), protectTag) {
		t.Error("a peer that left is still protected")
	}
	if n := a.send("still here"); n != 1 {
		t.Fatalf("after c left, Send reached %d peers, want 1", n)
	}
	b.waitMessage(ha.ID(), "still here")

	// The connection between a and b breaks: both see the other leave, and
	// both see it join again once reconnected.
	ha.Network().ClosePeer(hb.ID())
	a.waitLeft(hb.ID())
	b.waitLeft(ha.ID())
	connect(t, ha, hb)
	a.waitCount(is(PeerJoined, hb.ID(), ""), 2, "second join of b")
	b.waitCount(is(PeerJoined, ha.ID(), ""), 2, "second join of a")
	a.send("again")
	b.waitMessage(ha.ID(), "again")
	for _, r := range []*testRoom{a, b} {
		other := hb.ID()
		if r == b {
			other = ha.ID()
		}
		if j, l := r.count(is(PeerJoined, other, "")), r.count(is(PeerLeft, other, "")); j != 2 || l != 1 {
			t.Errorf("%s: %d joins and %d leaves of %s, want 2 and 1: %s", ShortID(r.Self()), j, l, ShortID(other), r.dump())
		}
		if n := r.count(is(PeerLeft, hc.ID(), "")); n != 1 {
			t.Errorf("%s: c left %d times, want once", ShortID(r.Self()), n)
		}
	}
}

// TestSessionReplaced: a second session from the same peer replaces the
// first without a second join, and the first ending is not a leave.
func TestSessionReplaced(t *testing.T) {
	ha, hx := newHost(t), newHost(t)
	a := newRoom(t, ha, "r")
	connect(t, hx, ha)
	s1, lr1, ans := rawStream(t, hx, ha.ID(), "r")
	if ans != "welcome" {
		t.Fatalf("first answer %q", ans)
	}
	a.waitJoined(hx.ID())
	s2, _, ans := rawStream(t, hx, ha.ID(), "r")
	if ans != "welcome" {
		t.Fatalf("second answer %q", ans)
	}
	// The first stream is reset by the room once the second is in.
	if _, err := lr1.next(100); err == nil {
		t.Fatal("first stream still open after the second session")
	}
	s1.Close()
	if _, err := s2.Write([]byte("on the second\n")); err != nil {
		t.Fatal(err)
	}
	a.waitMessage(hx.ID(), "on the second")
	if n := a.send("to x"); n != 1 {
		t.Fatalf("Send reached %d peers, want 1", n)
	}
	s2.Close()
	a.waitLeft(hx.ID())
	if j, l := a.count(is(PeerJoined, hx.ID(), "")), a.count(is(PeerLeft, hx.ID(), "")); j != 1 || l != 1 {
		t.Fatalf("%d joins and %d leaves, want 1 and 1: %s", j, l, a.dump())
	}
}

// TestSlowPeerDropped: a peer that does not read is dropped once its queue
// is full (announced as left) instead of holding up the room.
func TestSlowPeerDropped(t *testing.T) {
	ha, hx := newHost(t), newHost(t)
	a := newRoom(t, ha, "r", func(r *Room) { r.cfg.queue = 4 })
	connect(t, hx, ha)
	_, _, answer := rawStream(t, hx, ha.ID(), "r") // never read from again
	if answer != "welcome" {
		t.Fatalf("answer %q", answer)
	}
	a.waitJoined(hx.ID())
	line := strings.Repeat("y", DefaultMaxLineBytes)
	dropped := false
	for i := 0; i < 100000 && !dropped; i++ { // the stream's window is finite
		dropped = a.send(line) == 0
	}
	if !dropped {
		t.Fatal("a peer that never reads was never dropped")
	}
	ev := a.waitEvent(is(PeerLeft, hx.ID(), ""), "leave of the slow peer")
	if ev.Err == nil {
		t.Fatal("the slow peer's leave carries no reason")
	}
	if peers, _ := a.Peers(context.Background()); len(peers) != 0 {
		t.Fatalf("slow peer still listed: %v", peers)
	}
}
