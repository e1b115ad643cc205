package daemon

import (
	"net/http"
	"sort"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/p2pd/p2pd/api"
	"github.com/p2pd/p2pd/nat"
)

// handleStatus answers "can others reach me, and how".
func (d *Daemon) handleStatus(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, d.status())
	return nil
}

// status gathers the node's reachability state.
func (d *Daemon) status() api.Status {
	st := api.Status{
		ID:                 d.host.ID().String(),
		Reachability:       reachName(d.reachability()),
		ReachabilityForced: d.cfg.nat.reachability != network.ReachabilityUnknown,
		Addresses:          []string{},
		Announced:          []string{},
		Relays:             []api.RelayReservation{},
		RelayService:       d.relayServiceJSON(),
		HolePunching:       api.HolePunching{Enabled: true, Ready: d.holePunchReady()},
		DHT: api.DHTStatus{
			Mode:             d.cfg.dhtMode,
			RoutingTableSize: d.disc.RoutingTableSize(),
		},
	}
	st.DHT.Bootstrapped = st.DHT.RoutingTableSize > 0
	if addrs, err := d.host.Network().InterfaceListenAddresses(); err == nil {
		for _, a := range addrs {
			if !nat.IsRelayed(a) { // the relay transport "listens" on /p2p-circuit
				st.Addresses = append(st.Addresses, a.String())
			}
		}
	}
	p2p := ma.StringCast("/p2p/" + d.host.ID().String())
	for _, a := range d.host.Addrs() {
		st.Announced = append(st.Announced, a.Encapsulate(p2p).String())
	}
	st.Gateway = d.gatewayAddr()
	if d.nat.keeper != nil {
		for _, r := range d.nat.keeper.Reservations() {
			st.Relays = append(st.Relays, reservationJSON(r))
		}
	}
	for _, p := range d.host.Network().Peers() {
		if c := bestConn(d.host.Network().ConnsToPeer(p)); c != nil {
			if nat.IsRelayed(c.RemoteMultiaddr()) {
				st.Peers.Relayed++
			} else {
				st.Peers.Direct++
			}
		}
	}
	st.Verdict = verdict(&st, len(d.cfg.nat.relays) > 0)
	return st
}

// bestConn picks the connection a peer is shown by: a direct one before a
// relayed one, else the first.
func bestConn(conns []network.Conn) network.Conn {
	for _, c := range conns {
		if !nat.IsRelayed(c.RemoteMultiaddr()) {
			return c
		}
	}
	if len(conns) > 0 {
		return conns[0]
	}
	return nil
}

// connKind returns api.Peer's connection and transport fields for c.
func connKind(c network.Conn) (connection, transport string) {
	connection = api.ConnectionDirect
	if nat.IsRelayed(c.RemoteMultiaddr()) {
		connection = api.ConnectionRelayed
	}
	return connection, transportName(c.RemoteMultiaddr())
}

// transportName names the transport of address a (for a relayed address,
// the one to the relay).
func transportName(a ma.Multiaddr) string {
	name := "unknown"
	for _, c := range a {
		switch c.Code() {
		case ma.P_CIRCUIT:
			return name
		case ma.P_TCP:
			name = "tcp"
		case ma.P_QUIC_V1:
			name = "quic"
		case ma.P_WEBTRANSPORT:
			name = "webtransport"
		case ma.P_WS, ma.P_WSS:
			name = "websocket"
		case ma.P_WEBRTC_DIRECT:
			name = "webrtc-direct"
		}
	}
	return name
}

// sortedPeers returns ids sorted.
func sortedPeers(ids []peer.ID) []peer.ID {
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}
