package listeners

import (
	"context"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// OpenStream opens a stream to peer id speaking proto the way a forward's
// connections do: it connects first if needed, looking the peer up through
// the PeerFinder when it has no known address, and negotiates the protocol
// lazily when the peer is known to serve it. A peer that does not serve
// proto gives an error matching go-multistream's ErrNotSupported, at once
// or on the stream's first Read. The caller owns the stream.
//
// It is for other front ends of the node (the HTTP gateway); id must not
// be this node (ErrSelfTarget).
func (r *Registry) OpenStream(ctx context.Context, id peer.ID, proto protocol.ID) (network.Stream, error) {
	if id == r.h.ID() {
		return nil, ErrSelfTarget
	}
	// The request a forward with no addresses would make; never registered.
	e := &entry{info: Info{Kind: KindForward, Protocol: proto}, wire: proto, peer: id}
	return r.openStream(ctx, e)
}
