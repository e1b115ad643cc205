package chat

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

// waitLimit bounds every wait in these tests: it only turns a hang into a
// failure and is not a performance threshold.
const waitLimit = 30 * time.Second

// newHost returns a host on 127.0.0.1 over TCP, closed at the end of the test.
func newHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
	)
	if err != nil {
		t.Fatalf("new host: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// testRoom is a started Room whose events are recorded.
type testRoom struct {
	*Room
	t *testing.T

	mu     sync.Mutex // guards events
	events []Event
	seen   chan struct{} // closed and replaced on each new event
	done   chan struct{} // closed when the Events channel closes
}

// newRoom starts a room on h; it is closed at the end of the test (before
// the host, whose cleanup was registered earlier).
func newRoom(t *testing.T, h host.Host, name string, setup ...func(*Room)) *testRoom {
	t.Helper()
	r, err := New(h, name)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	for _, f := range setup {
		f(r)
	}
	tr := &testRoom{Room: r, t: t, seen: make(chan struct{}), done: make(chan struct{})}
	if err := r.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	go tr.record()
	t.Cleanup(func() {
		r.Close()
		<-tr.done
	})
	return tr
}

func (tr *testRoom) record() {
	defer close(tr.done)
	for ev := range tr.Events() {
		tr.mu.Lock()
		tr.events = append(tr.events, ev)
		close(tr.seen)
		tr.seen = make(chan struct{})
		tr.mu.Unlock()
	}
}

// waitEvent waits for an event matching want and returns it.
func (tr *testRoom) waitEvent(want func(Event) bool, what string) Event {
	tr.t.Helper()
	deadline := time.After(waitLimit)
	for {
		tr.mu.Lock()
		for _, ev := range tr.events {
			if want(ev) {
				tr.mu.Unlock()
				return ev
			}
		}
		seen := tr.seen
		tr.mu.Unlock()
		select {
		case <-seen:
		case <-tr.done:
			tr.t.Fatalf("room %s closed while waiting for %s; events: %s", ShortID(tr.Self()), what, tr.dump())
		case <-deadline:
			tr.t.Fatalf("room %s: no %s within %v; events: %s", ShortID(tr.Self()), what, waitLimit, tr.dump())
		}
	}
}

// waitCount waits until n recorded events match want.
func (tr *testRoom) waitCount(want func(Event) bool, n int, what string) {
	tr.t.Helper()
	deadline := time.After(waitLimit)
	for {
		tr.mu.Lock()
		seen := tr.seen
		tr.mu.Unlock()
		if tr.count(want) >= n {
			return
		}
		select {
		case <-seen:
		case <-tr.done:
			tr.t.Fatalf("room %s closed while waiting for %s; events: %s", ShortID(tr.Self()), what, tr.dump())
		case <-deadline:
			tr.t.Fatalf("room %s: no %s within %v; events: %s", ShortID(tr.Self()), what, waitLimit, tr.dump())
		}
	}
}

func (tr *testRoom) waitJoined(p peer.ID) {
	tr.t.Helper()
	tr.waitEvent(is(PeerJoined, p, ""), "join of "+ShortID(p))
}

func (tr *testRoom) waitLeft(p peer.ID) {
	tr.t.Helper()
	tr.waitEvent(is(PeerLeft, p, ""), "leave of "+ShortID(p))
}

func (tr *testRoom) waitMessage(p peer.ID, text string) {
	tr.t.Helper()
	tr.waitEvent(is(Message, p, text), fmt.Sprintf("message %q from %s", text, ShortID(p)))
}

// count returns how many recorded events match want.
func (tr *testRoom) count(want func(Event) bool) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	n := 0
	for _, ev := range tr.events {
		if want(ev) {
			n++
		}
	}
	return n
}

// index returns the position of the first recorded event matching want, or -1.
func (tr *testRoom) index(want func(Event) bool) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for i, ev := range tr.events {
		if want(ev) {
			return i
		}
	}
	return -1
}

func (tr *testRoom) dump() string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var b strings.Builder
	for _, ev := range tr.events {
		fmt.Fprintf(&b, "[%s %s %q %v] ", ev.Kind, ShortID(ev.Peer), ev.Text, ev.Err)
	}
	return b.String()
}

// is matches events of kind from p (and with text, for messages).
func is(kind EventKind, p peer.ID, text string) func(Event) bool {
	return func(ev Event) bool {
		return ev.Kind == kind && ev.Peer == p && (kind != Message || ev.Text == text)
	}
}

func (tr *testRoom) send(text string) int {
	tr.t.Helper()
	n, err := tr.Send(context.Background(), text)
	if err != nil {
		tr.t.Fatalf("Send(%q): %v", text, err)
	}
	return n
}

// connect connects a to b.
func connect(t *testing.T, a, b host.Host) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatalf("connect %s -> %s: %v", ShortID(a.ID()), ShortID(b.ID()), err)
	}
}

// chatStreams counts the open chat streams between h and p.
func chatStreams(h host.Host, p peer.ID) int {
	n := 0
	for _, c := range h.Network().ConnsToPeer(p) {
		for _, s := range c.GetStreams() {
			if s.Protocol() == ProtocolID || s.Protocol() == ProtocolNickID {
				n++
			}
		}
	}
	return n
}

// waitStreams waits until h has exactly want chat streams with p. The count
// changes only while sessions are being set up or torn down.
func waitStreams(t *testing.T, h host.Host, p peer.ID, want int) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for chatStreams(h, p) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s has %d chat streams with %s, want %d", ShortID(h.ID()), chatStreams(h, p), ShortID(p), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// rawStream opens a chat stream from h to p and says hello for room; it
// returns the stream and the answer line.
func rawStream(t *testing.T, h host.Host, p peer.ID, room string) (network.Stream, *lineReader, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	s, err := h.NewStream(ctx, p, ProtocolID)
	if err != nil {
		t.Fatalf("NewStream: %v", err)
	}
	t.Cleanup(func() { s.Reset() })
	if _, err := s.Write([]byte(helloPrefix + roomKey(room) + "\n")); err != nil {
		t.Fatalf("write hello: %v", err)
	}
	lr := newLineReader(s, 1<<16)
	answer, err := lr.next(1 << 16)
	if err != nil {
		t.Fatalf("reading the answer to hello: %v", err)
	}
	return s, lr, answer
}

// syncBuffer is a bytes.Buffer safe for concurrent use, with a way to wait
// for content.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor waits until the buffer contains sub.
func (s *syncBuffer) waitFor(t *testing.T, sub, what string) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !strings.Contains(s.String(), sub) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %q not printed within %v; got:\n%s", what, sub, waitLimit, s.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
