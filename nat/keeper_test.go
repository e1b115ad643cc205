package nat

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
)

func loopHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// TestKeeperRenews: a relay that grants short reservations sees the Keeper
// renew before each one expires, and the circuit address stays announced.
func TestKeeperRenews(t *testing.T) {
	rh := loopHost(t)
	rc := relay.DefaultResources()
	rc.ReservationTTL = renewBefore + 3*time.Second // renewed about every 3 s
	rs, err := relay.New(rh, relay.WithResources(rc))
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()

	h := loopHost(t)
	changes := make(chan Reservation, 64)
	k, err := NewKeeper(h, []peer.AddrInfo{{ID: rh.ID(), Addrs: rh.Addrs()}}, OnChange(func(r Reservation) {
		select {
		case changes <- r:
		default:
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var expires []time.Time
	for len(expires) < 3 {
		select {
		case r := <-changes:
			if !r.Active || r.Err != nil || len(r.Addrs) == 0 {
				t.Fatalf("reservation lost while the relay runs: %+v", r)
			}
			expires = append(expires, r.Expires)
		case <-ctx.Done():
			t.Fatalf("renewals seen: %v", expires)
		}
	}
	if !expires[2].After(expires[0]) {
		t.Fatalf("expiry did not move on renewal: %v", expires)
	}
	if got := k.Reservations(); len(got) != 1 || !got[0].Active || got[0].Relay != rh.ID() {
		t.Fatalf("Reservations: %+v", got)
	}
}
