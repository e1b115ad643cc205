package host

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/p2pd/p2pd/internal/nettest"
)

const relayPeer = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"

func TestRankTCPFirst(t *testing.T) {
	tests := []struct {
		name  string
		addrs []string
		want  map[string]time.Duration
	}{
		{
			name:  "tcp before quic",
			addrs: []string{"/ip4/127.0.0.1/udp/1/quic-v1", "/ip4/127.0.0.1/tcp/1"},
			want: map[string]time.Duration{
				"/ip4/127.0.0.1/tcp/1":         0,
				"/ip4/127.0.0.1/udp/1/quic-v1": QUICFallbackDelay,
			},
		},
		{
			name:  "quic alone is dialled at once",
			addrs: []string{"/ip4/10.0.0.1/udp/1/quic-v1"},
			want:  map[string]time.Duration{"/ip4/10.0.0.1/udp/1/quic-v1": 0},
		},
		{
			name:  "second private tcp address staggered, quic after it",
			addrs: []string{"/ip4/10.0.0.1/udp/1/quic-v1", "/ip4/10.0.0.1/tcp/1", "/ip4/10.0.0.2/tcp/2"},
			want: map[string]time.Duration{
				"/ip4/10.0.0.1/tcp/1":         0,
				"/ip4/10.0.0.2/tcp/2":         swarm.PrivateTCPDelay,
				"/ip4/10.0.0.1/udp/1/quic-v1": swarm.PrivateTCPDelay + QUICFallbackDelay,
			},
		},
		{
			name: "relay after every direct address",
			addrs: []string{
				"/ip4/1.2.3.4/tcp/1/p2p/" + relayPeer + "/p2p-circuit",
				"/ip4/8.8.8.8/udp/1/quic-v1",
				"/ip4/8.8.8.8/tcp/1",
			},
			want: map[string]time.Duration{
				"/ip4/8.8.8.8/tcp/1":                                   0,
				"/ip4/8.8.8.8/udp/1/quic-v1":                           QUICFallbackDelay,
				"/ip4/1.2.3.4/tcp/1/p2p/" + relayPeer + "/p2p-circuit": QUICFallbackDelay + swarm.RelayDelay,
			},
		},
		{
			name: "behind a NAT: relay beside quic, not after it",
			addrs: []string{
				"/ip4/11.0.0.10/tcp/1/p2p/" + relayPeer + "/p2p-circuit",
				"/ip4/192.168.1.2/udp/1/quic-v1",
				"/ip4/192.168.1.2/tcp/1",
				"/ip4/127.0.0.1/tcp/1",
			},
			want: map[string]time.Duration{
				"/ip4/192.168.1.2/tcp/1":                                 0,
				"/ip4/127.0.0.1/tcp/1":                                   swarm.PrivateTCPDelay,
				"/ip4/192.168.1.2/udp/1/quic-v1":                         swarm.PrivateTCPDelay + QUICFallbackDelay,
				"/ip4/11.0.0.10/tcp/1/p2p/" + relayPeer + "/p2p-circuit": swarm.PrivateTCPDelay + swarm.RelayDelay,
			},
		},
		{
			name:  "relay alone is dialled at once",
			addrs: []string{"/ip4/1.2.3.4/tcp/1/p2p/" + relayPeer + "/p2p-circuit"},
			want:  map[string]time.Duration{"/ip4/1.2.3.4/tcp/1/p2p/" + relayPeer + "/p2p-circuit": 0},
		},
		{name: "nothing", addrs: nil, want: map[string]time.Duration{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var in []ma.Multiaddr
			for _, s := range tt.addrs {
				in = append(in, ma.StringCast(s))
			}
			got := map[string]time.Duration{}
			for _, ad := range rankTCPFirst(in) {
				got[ad.Addr.String()] = ad.Delay
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("ranking\n got %v\nwant %v", got, tt.want)
			}
		})
	}
}

func connTransports(conns []network.Conn) []string {
	var out []string
	for _, c := range conns {
		switch {
		case hasProtocol(c.RemoteMultiaddr(), ma.P_QUIC_V1):
			out = append(out, "quic")
		case hasProtocol(c.RemoteMultiaddr(), ma.P_TCP):
			out = append(out, "tcp")
		default:
			out = append(out, c.RemoteMultiaddr().String())
		}
	}
	return out
}

// TestPrefersTCP gives a host both a QUIC and a TCP address of a peer (QUIC
// first) and checks it ends up connected over TCP only.
func TestPrefersTCP(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := newHost(t, ListenAddrs(loopQUIC, loopTCP))
	var quicAddr, tcpAddr ma.Multiaddr
	for _, a := range b.Addrs() {
		switch transportOf(a) {
		case QUIC:
			quicAddr = a
		case TCP:
			tcpAddr = a
		}
	}
	if quicAddr == nil || tcpAddr == nil {
		t.Fatalf("peer lacks a TCP or a QUIC address: %v", b.Addrs())
	}
	a := newHost(t, ListenAddrs(loopQUIC, loopTCP))
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: []ma.Multiaddr{quicAddr, tcpAddr}}); err != nil {
		t.Fatal(err)
	}
	if got := connTransports(a.Network().ConnsToPeer(b.ID())); fmt.Sprint(got) != "[tcp]" {
		t.Fatalf("connections to the peer: %v, want [tcp]", got)
	}
}

// TestFallsBackToQUIC gives a host a TCP address where nothing listens and
// the peer's QUIC address: it must still connect, over QUIC.
func TestFallsBackToQUIC(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := newHost(t, ListenAddrs(loopQUIC), Transports(QUIC))
	deadTCP, err := manet.FromNetAddr(nettest.RefusingAddr(t))
	if err != nil {
		t.Fatal(err)
	}

	a := newHost(t, ListenAddrs(loopTCP, loopQUIC))
	addrs := append([]ma.Multiaddr{deadTCP}, b.Addrs()...)
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: addrs}); err != nil {
		t.Fatal(err)
	}
	if got := connTransports(a.Network().ConnsToPeer(b.ID())); fmt.Sprint(got) != "[quic]" {
		t.Fatalf("connections to the peer: %v, want [quic]", got)
	}
}
