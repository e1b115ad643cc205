package host

import (
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// QUICFallbackDelay is how long after its last TCP dial the host starts
// dialing a peer's QUIC addresses. A TCP dial that fails outright (refused,
// unreachable) starts the QUIC dials at once, since the swarm dials the next
// address immediately when no dial is in flight.
const QUICFallbackDelay = 500 * time.Millisecond

// rankTCPFirst is the host's dial ranker. go-libp2p's default dials QUIC
// first; p2pd prefers TCP because tunnels ride on it: yamux over TCP carries
// any number of streams per connection (QUIC caps incoming streams at 256
// per connection) and is 2-3x faster on loopback.
//
// Direct TCP addresses come first, ordered among themselves by
// swarm.DefaultDialRanker (which staggers IPv6/IPv4 and private/public
// attempts). QUIC addresses follow QUICFallbackDelay after the last TCP
// attempt, any other direct addresses after those, and relay addresses last,
// swarm.RelayDelay after every direct attempt. A peer behind a NAT, though,
// announces circuit addresses next to LAN and loopback ones only: then the
// relay addresses start swarm.RelayDelay after the last TCP attempt, beside
// the QUIC ones. A QUIC dial to a LAN address of another network does not
// fail at once as a TCP one does, and waiting for it cost the first
// connection across two NATs a second (BENCHMARKS.md). On a shared LAN the
// TCP dial has long succeeded by then.
func rankTCPFirst(addrs []ma.Multiaddr) []network.AddrDelay {
	var tcps, quics, others, relays []ma.Multiaddr
	for _, a := range addrs {
		switch {
		case hasProtocol(a, ma.P_CIRCUIT):
			relays = append(relays, a)
		case hasProtocol(a, ma.P_QUIC_V1):
			quics = append(quics, a)
		case hasProtocol(a, ma.P_TCP):
			tcps = append(tcps, a)
		default:
			others = append(others, a)
		}
	}

	out := make([]network.AddrDelay, 0, len(addrs))
	next := time.Duration(0) // when the next group may start
	add := func(group []ma.Multiaddr, gap time.Duration) {
		if len(group) == 0 {
			return
		}
		if len(out) > 0 {
			next = latest(out) + gap
		}
		for _, ad := range swarm.DefaultDialRanker(group) {
			ad.Delay += next
			out = append(out, ad)
		}
	}
	add(tcps, 0)
	afterTCP := latest(out)
	add(quics, QUICFallbackDelay)
	add(others, QUICFallbackDelay)
	if len(relays) > 0 && len(tcps) > 0 && !slices.ContainsFunc(append(tcps, append(quics, others...)...), manet.IsPublicAddr) {
		for _, ad := range swarm.DefaultDialRanker(relays) {
			ad.Delay += afterTCP + swarm.RelayDelay
			out = append(out, ad)
		}
		return out
	}
	add(relays, swarm.RelayDelay)
	return out
}

func hasProtocol(a ma.Multiaddr, code int) bool {
	for _, c := range a {
		if c.Code() == code {
			return true
		}
	}
	return false
}

func latest(ads []network.AddrDelay) time.Duration {
	var d time.Duration
	for _, ad := range ads {
		d = max(d, ad.Delay)
	}
	return d
}
