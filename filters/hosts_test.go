package filters

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

// newHost starts a TCP-only host on 127.0.0.1 with f as its gater (none when
// f is nil) and closes it when the test ends.
func newHost(t *testing.T, f *Filters) host.Host {
	t.Helper()
	opts := []libp2p.Option{
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
	}
	if f != nil {
		opts = append(opts, libp2p.ConnectionGater(f))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func connect(ctx context.Context, from, to host.Host, addrs ...ma.Multiaddr) error {
	if len(addrs) == 0 {
		addrs = to.Addrs()
	}
	return from.Connect(ctx, peer.AddrInfo{ID: to.ID(), Addrs: addrs})
}

// TestHostsDenyLoopback shows that a host whose filters deny 127.0.0.0/8 can
// neither dial nor be dialled over 127.0.0.1, that its own dials fail with
// the swarm's gater error, and (as a control) that a filter which does not
// cover loopback lets both directions through.
func TestHostsDenyLoopback(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	denying := newHost(t, mustFilters(t, []string{"127.0.0.0/8"}, nil))
	other := newHost(t, nil)

	t.Run("dial out is refused by the gater", func(t *testing.T) {
		err := connect(ctx, denying, other)
		if err == nil {
			t.Fatal("a host denying 127.0.0.0/8 connected to 127.0.0.1")
		}
		if !errors.Is(err, swarm.ErrGaterDisallowedConnection) {
			t.Fatalf("dial error is not a gater error: %v", err)
		}
		var de *swarm.DialError
		if !errors.As(err, &de) || de.Peer != other.ID() {
			t.Fatalf("dial error is not a *swarm.DialError for %s: %v", other.ID(), err)
		}
	})

	t.Run("dial in is refused", func(t *testing.T) {
		err := connect(ctx, other, denying)
		if err == nil {
			t.Fatal("a host denying 127.0.0.0/8 accepted a connection from 127.0.0.1")
		}
		// Refused in InterceptAccept before the handshake: the dialer only sees
		// its handshake fail, not a gater error.
		if errors.Is(err, swarm.ErrGaterDisallowedConnection) {
			t.Fatalf("dialer saw a gater error of its own: %v", err)
		}
		if n := len(denying.Network().ConnsToPeer(other.ID())); n != 0 {
			t.Fatalf("denying host holds %d connections to the dialer", n)
		}
		if c := other.Network().Connectedness(denying.ID()); c == network.Connected {
			t.Fatalf("dialer reports %v to the denying host", c)
		}
	})

	t.Run("control: a filter not covering loopback lets both through", func(t *testing.T) {
		a := newHost(t, mustFilters(t, []string{"10.0.0.0/8"}, []string{"127.0.0.0/8"}))
		b := newHost(t, mustFilters(t, []string{"10.0.0.0/8"}, nil))
		if err := connect(ctx, a, b); err != nil {
			t.Fatalf("dial out: %v", err)
		}
		c := newHost(t, nil)
		if err := connect(ctx, c, a); err != nil {
			t.Fatalf("dial in: %v", err)
		}
	})
}

// TestHostsDNSIsJudgedAfterResolution shows the swarm resolves /dns4 names
// before asking the gater: /dns4/localhost is refused by a deny range
// covering 127.0.0.1, refused by an allow list that does not contain it, and
// admitted by an allow list that does, which would be impossible if the
// gater were shown the name (names are refused under an allow list).
func TestHostsDNSIsJudgedAfterResolution(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	target := newHost(t, nil)
	port, err := target.Addrs()[0].ValueForProtocol(ma.P_TCP)
	if err != nil {
		t.Fatal(err)
	}
	byName := ma.StringCast(fmt.Sprintf("/dns4/localhost/tcp/%s", port))

	tests := []struct {
		name    string
		deny    []string
		allow   []string
		wantErr error // nil: the connection must succeed
	}{
		{name: "deny range covers the resolved address", deny: []string{"127.0.0.0/8"}, wantErr: swarm.ErrGaterDisallowedConnection},
		{name: "allow list misses the resolved address", allow: []string{"10.0.0.0/8"}, wantErr: swarm.ErrGaterDisallowedConnection},
		{name: "allow list holds the resolved address", allow: []string{"127.0.0.1/32"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHost(t, mustFilters(t, tt.deny, tt.allow))
			err := connect(ctx, h, target, byName)
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("connect via %s: %v", byName, err)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("connect via %s: got %v, want %v", byName, err, tt.wantErr)
			}
		})
	}
}

// TestMappedRangeOnHosts checks an IPv4-mapped deny range refuses a real
// IPv4 loopback dial.
func TestMappedRangeOnHosts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f, err := New(Deny(netip.MustParsePrefix("::ffff:127.0.0.0/104")))
	if err != nil {
		t.Fatal(err)
	}
	h := newHost(t, f)
	target := newHost(t, nil)
	if err := connect(ctx, h, target); !errors.Is(err, swarm.ErrGaterDisallowedConnection) {
		t.Fatalf("connect: got %v, want a gater error", err)
	}
}
