package listeners

import (
	"context"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// OpenStream opens a stream to peer ai.ID speaking proto the way a
// forward's connections do: it connects first if needed (offering ai's
// addresses), looking the peer up through the PeerFinder when it has no
// known address, and negotiates the protocol
// lazily when the peer is known to serve it. A peer that does not serve
// proto gives an error matching go-multistream's ErrNotSupported, at once
// (within a *RefusedError) or on the stream's first Read; a listen that
// refuses the stream resets it with one of the Code* errors. The caller
// owns the stream.
//
// It is for other front ends of the node (the HTTP gateway); ai.ID must
// not be this node (ErrSelfTarget).
func (r *Registry) OpenStream(ctx context.Context, ai peer.AddrInfo, proto protocol.ID) (network.Stream, error) {
	if ai.ID == r.h.ID() {
		return nil, ErrSelfTarget
	}
	// What a forward to ai would dial; never registered.
	e := &entry{info: Info{Kind: KindForward, Protocol: proto}, wire: proto, peer: ai.ID, addrs: ai.Addrs}
	return r.openPeer(ctx, e)
}
