package filters

import (
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

var _ connmgr.ConnectionGater = (*Filters)(nil)

// FilterAddrs fits the DHT's address filter option.
var _ func([]ma.Multiaddr) []ma.Multiaddr = (*Filters)(nil).FilterAddrs

// InterceptPeerDial implements connmgr.ConnectionGater. It always allows:
// the filters judge addresses, not peers.
func (f *Filters) InterceptPeerDial(peer.ID) bool { return true }

// InterceptAddrDial implements connmgr.ConnectionGater: it refuses to dial
// an address the filters refuse.
func (f *Filters) InterceptAddrDial(p peer.ID, a ma.Multiaddr) bool {
	if why := f.refusal(a); why != "" {
		log.Debugw("refused to dial address", "peer", p, "addr", a, "reason", why)
		return false
	}
	return true
}

// InterceptAccept implements connmgr.ConnectionGater: it refuses an inbound
// connection whose remote address the filters refuse, before any handshake.
func (f *Filters) InterceptAccept(c network.ConnMultiaddrs) bool {
	a := c.RemoteMultiaddr()
	if why := f.refusal(a); why != "" {
		log.Debugw("refused inbound connection", "addr", a, "reason", why)
		return false
	}
	return true
}

// InterceptSecured implements connmgr.ConnectionGater: it judges the remote
// address of the now authenticated connection again, in both directions.
func (f *Filters) InterceptSecured(dir network.Direction, p peer.ID, c network.ConnMultiaddrs) bool {
	a := c.RemoteMultiaddr()
	if why := f.refusal(a); why != "" {
		log.Debugw("refused secured connection", "peer", p, "addr", a, "direction", dir, "reason", why)
		return false
	}
	return true
}

// InterceptUpgraded implements connmgr.ConnectionGater: it judges the
// remote address of the finished connection once more. Every connection,
// whatever its transport, passes this hook.
func (f *Filters) InterceptUpgraded(c network.Conn) (bool, control.DisconnectReason) {
	a := c.RemoteMultiaddr()
	if why := f.refusal(a); why != "" {
		log.Debugw("refused upgraded connection", "peer", c.RemotePeer(), "addr", a, "reason", why)
		return false, 0
	}
	return true, 0
}
