package nat

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRelayConfigValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		edit func(*RelayConfig)
		err  string
	}{
		{"defaults", func(*RelayConfig) {}, ""},
		{"no reservations", func(c *RelayConfig) { c.MaxReservations = 0 }, "relay max reservations 0: want at least 1"},
		{"no circuits", func(c *RelayConfig) { c.MaxCircuits = -1 }, "relay max circuits -1: want at least 1"},
		{"negative duration", func(c *RelayConfig) { c.LimitDuration = -time.Second }, "relay limit duration -1s is negative (0 is no limit)"},
		{"negative data", func(c *RelayConfig) { c.LimitData = -5 }, "relay limit data -5 is negative (0 is no limit)"},
	} {
		c := DefaultRelayConfig()
		tt.edit(&c)
		err := c.Validate()
		if (tt.err == "" && err != nil) || (tt.err != "" && (err == nil || err.Error() != tt.err)) {
			t.Errorf("%s: got %v, want %q", tt.name, err, tt.err)
		}
	}
}

// TestRelayResources checks how the limits map onto go-libp2p's, which has
// only "both limits" or "none".
func TestRelayResources(t *testing.T) {
	c := DefaultRelayConfig()
	rc := c.resources()
	if rc.Limit == nil || rc.Limit.Data != 1<<17 || rc.Limit.Duration != 2*time.Minute || rc.BufferSize != relayBufferLimited {
		t.Fatalf("defaults: %+v %+v", rc, rc.Limit)
	}
	c.LimitData, c.LimitDuration = 0, 0
	if rc := c.resources(); rc.Limit != nil || rc.BufferSize != relayBufferUnlimited || !c.Unlimited() {
		t.Fatalf("unlimited: %+v", rc)
	}
	c.LimitDuration = time.Minute
	if rc := c.resources(); rc.Limit == nil || rc.Limit.Data != math.MaxInt64 || rc.Limit.Duration != time.Minute {
		t.Fatalf("no data limit: %+v", rc.Limit)
	}
	c.LimitDuration, c.LimitData = 0, 1000
	if rc := c.resources(); rc.Limit == nil || rc.Limit.Data != 1000 || rc.Limit.Duration != math.MaxUint32*time.Second {
		t.Fatalf("no duration limit: %+v", rc.Limit)
	}
}

func TestAllowList(t *testing.T) {
	a, b, c := peer.ID("a"), peer.ID("b"), peer.ID("c")
	l := newAllowList([]peer.ID{a, b})
	if !l.AllowReserve(a, nil) || l.AllowReserve(c, nil) {
		t.Fatal("reserve")
	}
	if !l.AllowConnect(a, nil, b) || l.AllowConnect(c, nil, a) || l.AllowConnect(a, nil, c) {
		t.Fatal("connect")
	}
}

func TestMergeRelays(t *testing.T) {
	id := "12D3KooWAEYtYAwFkN95p97zyuV2QZWDUnuY2fcbvMDtX7C9bUqF"
	ais, err := MergeRelays([]ma.Multiaddr{
		ma.StringCast("/ip4/11.0.0.10/tcp/4001/p2p/" + id),
		ma.StringCast("/ip4/11.0.0.10/udp/4001/quic-v1/p2p/" + id),
	})
	if err != nil || len(ais) != 1 || len(ais[0].Addrs) != 2 {
		t.Fatalf("%v %v: want one relay with two addresses", ais, err)
	}

	// Several relays keep the order they were given in (status shows them
	// so); a map would shuffle them.
	var addrs []ma.Multiaddr
	var want []peer.ID
	for i := 0; i < 8; i++ {
		_, pub, err := crypto.GenerateEd25519Key(nil)
		if err != nil {
			t.Fatal(err)
		}
		p, err := peer.IDFromPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, p)
		addrs = append(addrs, ma.StringCast(fmt.Sprintf("/ip4/11.0.0.%d/tcp/4001/p2p/%s", 10+i, p)))
	}
	ais, err = MergeRelays(addrs)
	if err != nil || len(ais) != len(want) {
		t.Fatalf("%v %v: want %d relays", ais, err, len(want))
	}
	for i, ai := range ais {
		if ai.ID != want[i] {
			t.Fatalf("relay %d is %s, want %s (the given order)", i, ai.ID, want[i])
		}
	}
	if _, err := MergeRelays([]ma.Multiaddr{ma.StringCast("/ip4/11.0.0.10/tcp/4001")}); err == nil {
		t.Fatal("a relay address without /p2p/ID was accepted")
	}
}

// punch feeds the tracker one go-libp2p event.
func punch(tr *PunchTracker, p peer.ID, evt any) {
	tr.Trace(&holepunch.Event{Remote: p, Evt: evt})
}

func TestPunchTracker(t *testing.T) {
	now := time.Unix(1000, 0)
	tr := NewPunchTracker(time.Minute)
	tr.now = func() time.Time { return now }
	var mu sync.Mutex
	var seen []PunchEvent
	tr.OnEvent(func(e PunchEvent) { mu.Lock(); seen = append(seen, e); mu.Unlock() })
	p := peer.ID("p")

	if err, retry := tr.NoDirectPath(p); err != nil || retry {
		t.Fatalf("unknown peer: %v %v", err, retry)
	}
	ended := tr.Ended(p)
	for i := 1; i <= PunchAttempts; i++ {
		punch(tr, p, &holepunch.HolePunchAttemptEvt{Attempt: i})
		if err, _ := tr.NoDirectPath(p); err != nil {
			t.Fatalf("after %d attempts, still trying, got %v", i-1, err)
		}
		punch(tr, p, &holepunch.EndHolePunchEvt{Error: "i/o timeout"})
	}
	select {
	case <-ended:
	default:
		t.Fatal("Ended not closed after the last failed attempt")
	}
	err, retry := tr.NoDirectPath(p)
	if !errors.Is(err, ErrPunchFailed) || retry || err.Error() != "hole punching failed 3 times (last: i/o timeout)" {
		t.Fatalf("after giving up: %v %v", err, retry)
	}

	// A minute later one caller gets to retry; others keep the reason
	// until that retry ends.
	now = now.Add(time.Minute)
	if err, retry := tr.NoDirectPath(p); err != nil || !retry {
		t.Fatalf("after the retry interval: %v %v", err, retry)
	}
	if err, retry := tr.NoDirectPath(p); err != nil || retry {
		t.Fatalf("while retrying: %v %v", err, retry)
	}
	punch(tr, p, &holepunch.EndHolePunchEvt{Success: true, EllapsedTime: 12 * time.Millisecond})
	if err, retry := tr.NoDirectPath(p); err != nil || retry {
		t.Fatalf("after success: %v %v", err, retry)
	}

	// A wait that saw no punch at all is remembered too.
	q := peer.ID("q")
	tr.Failed(q, errors.New("no hole punching attempt within 30s"))
	if err, _ := tr.NoDirectPath(q); err == nil || !strings.Contains(err.Error(), "no hole punching attempt within 30s") {
		t.Fatalf("after Failed: %v", err)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2*PunchAttempts+1 || seen[1].Kind != "result" || seen[1].Attempt != 1 || seen[1].Success ||
		seen[len(seen)-1].Kind != "result" || !seen[len(seen)-1].Success {
		t.Fatalf("events: %+v", seen)
	}
}
