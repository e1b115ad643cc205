package discovery

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestConnector(t *testing.T) {
	x, y := newHost(t), newHost(t)
	t.Cleanup(func() { x.Close(); y.Close() })
	dead := unreachablePeer(t)

	var (
		mu      sync.Mutex // guards reports
		reports []peer.ID
	)
	reported := func() []peer.ID {
		mu.Lock()
		defer mu.Unlock()
		return append([]peer.ID(nil), reports...)
	}
	now := time.Unix(1_000_000, 0)
	c := &connector{
		h: x, source: "t", tag: "p2pd-discovery:t", timeout: 5 * time.Second,
		report: func(source string, ai peer.AddrInfo) {
			if source != "t" {
				t.Errorf("source %q, want t", source)
			}
			mu.Lock()
			reports = append(reports, ai.ID)
			mu.Unlock()
		},
		now:   func() time.Time { return now },
		peers: make(map[peer.ID]*peerState),
	}
	failures := func(id peer.ID) (int, time.Time) {
		c.mu.Lock()
		defer c.mu.Unlock()
		st := c.peers[id]
		return st.failures, st.next
	}
	ctx := t.Context()

	// A new peer: connected, reported and tagged.
	c.handle(ctx, info(y))
	if got := reported(); len(got) != 1 || got[0] != y.ID() {
		t.Fatalf("reports after the first find: %v, want [%s]", got, y.ID())
	}
	if !connected(&node{h: x}, &node{h: y}) {
		t.Fatal("not connected after handle")
	}
	if w := x.ConnManager().GetTagInfo(y.ID()).Tags[c.tag]; w != tagWeight {
		t.Errorf("connection-manager tag weight %d, want %d", w, tagWeight)
	}
	// Found again while connected: not reported again.
	c.handle(ctx, info(y))
	if got := reported(); len(got) != 1 {
		t.Fatalf("reports after finding a connected peer again: %v, want one", got)
	}

	// An unreachable peer: a failure, then backoff.
	c.handle(ctx, dead)
	if n, next := failures(dead.ID); n != 1 || !next.Equal(now.Add(5*time.Second)) {
		t.Fatalf("after one failure: failures %d, next %v; want 1, now+5s", n, next.Sub(now))
	}
	c.handle(ctx, dead) // within the backoff: no attempt
	if n, _ := failures(dead.ID); n != 1 {
		t.Fatalf("attempted again within the backoff: failures %d", n)
	}
	now = now.Add(5 * time.Second)
	c.handle(ctx, dead)
	if n, next := failures(dead.ID); n != 2 || !next.Equal(now.Add(10*time.Second)) {
		t.Fatalf("after the second failure: failures %d, next %v; want 2, now+10s", n, next.Sub(now))
	}
	if got := reported(); len(got) != 1 {
		t.Fatalf("an unreachable peer was reported: %v", got)
	}

	// Lost and found again: reconnected and reported again.
	if err := x.Network().ClosePeer(y.ID()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "disconnected", func() bool { return !connected(&node{h: x}, &node{h: y}) })
	c.handle(ctx, info(y))
	if got := reported(); len(got) != 2 || got[1] != y.ID() {
		t.Fatalf("reports after reconnecting: %v, want y twice", got)
	}

	// Forgotten after an hour unseen; release removes the tags.
	now = now.Add(forgetAfter + time.Second)
	c.prune()
	c.mu.Lock()
	left := len(c.peers)
	c.mu.Unlock()
	if left != 0 {
		t.Errorf("prune kept %d peers not seen for over an hour", left)
	}
	if _, ok := x.ConnManager().GetTagInfo(y.ID()).Tags[c.tag]; ok {
		t.Errorf("tag still set after prune")
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		failures int
		want     time.Duration
	}{
		{1, 5 * time.Second},
		{2, 10 * time.Second},
		{3, 20 * time.Second},
		{6, 160 * time.Second},
		{7, 5 * time.Minute},
		{100, 5 * time.Minute},
	}
	for _, tt := range tests {
		if got := backoff(tt.failures); got != tt.want {
			t.Errorf("backoff(%d) = %v, want %v", tt.failures, got, tt.want)
		}
	}
}

func TestAdvertiseTimer(t *testing.T) {
	const ttl = 3 * time.Hour
	fail := errors.New("boom")
	a := advertiseTimer{retry: advertiseRetryMin, again: time.Minute}
	steps := []struct {
		err  error
		want time.Duration
	}{
		{fail, time.Second},
		{fail, 2 * time.Second},
		{nil, time.Minute},
		{fail, time.Second}, // a success resets the retry
		{nil, 2 * time.Minute},
		{nil, 4 * time.Minute},
		{nil, 8 * time.Minute},
		{nil, 16 * time.Minute},
		{nil, 32 * time.Minute},
		{nil, 64 * time.Minute},
		{nil, 128 * time.Minute},
		{nil, ttl * 7 / 8}, // renew before the record expires
	}
	for i, st := range steps {
		if got := a.next(ttl, st.err); got != st.want {
			t.Fatalf("step %d: wait %v, want %v", i, got, st.want)
		}
	}
	for i := range 1000 { // years of announcements: never overflows
		if got := a.next(ttl, nil); got != ttl*7/8 {
			t.Fatalf("announcement %d: wait %v, want %v", i, got, ttl*7/8)
		}
	}
	for range 100 {
		a.next(0, fail)
	}
	if got := a.next(0, fail); got != advertiseRetryMax {
		t.Fatalf("retry after many failures: %v, want %v", got, advertiseRetryMax)
	}
}
