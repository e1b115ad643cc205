package listeners

import (
	"context"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// quicMaxStreams is how many bidirectional streams a peer running go-libp2p
// lets one QUIC connection have open towards it at once. go-libp2p v0.51.0
// sets it as MaxIncomingStreams: 256 in the quic.Config of
// p2p/transport/quicreuse/config.go, with no option to change it. Past it,
// quic-go's OpenStreamSync (which go-libp2p's QUIC connection calls for
// every new stream) does not fail: it queues the stream until the peer has
// seen one of the open ones end and grants another (a MAX_STREAMS frame), or
// until the context ends. A forward's connection therefore waits up to its
// dial timeout and then fails with no more than "context deadline exceeded".
// yamux over TCP has no such limit (go-libp2p sets it to MaxUint32 and
// leaves stream counts to the resource manager).
const quicMaxStreams = 256

// quicTransport is network.ConnectionState.Transport of a QUIC v1
// connection (go-libp2p's p2p/transport/quic).
const quicTransport = "quic-v1"

// explainStreamLimit adds to err, a failed stream opening towards p, the
// reason when it is the QUIC stream limit: the opening ran out of time and
// every connection to p that could carry the stream is QUIC and already has
// quicMaxStreams streams of ours open. Limited (relayed) connections do not
// count: forwards never open streams on them. Otherwise it returns err
// unchanged.
func (r *Registry) explainStreamLimit(p peer.ID, err error) error {
	if !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	conns, least := 0, 0
	for _, c := range r.h.Network().ConnsToPeer(p) {
		if c.IsClosed() || c.Stat().Limited {
			continue
		}
		if c.ConnState().Transport != quicTransport {
			return err
		}
		n := outboundStreams(c)
		if n < quicMaxStreams {
			return err
		}
		if conns == 0 || n < least {
			least = n
		}
		conns++
	}
	if conns == 0 {
		return err
	}
	which := fmt.Sprintf("the connection to %s is QUIC and already carries %d streams", p, least)
	if conns > 1 {
		which = fmt.Sprintf("each of the %d connections to %s is QUIC and already carries %d streams or more", conns, p, least)
	}
	return fmt.Errorf("%w: %w: %s, and go-libp2p's QUIC allows at most %d at once; none ended in time: "+
		"close some, or let the peer listen on TCP (no such limit)", err, ErrQUICStreamLimit, which, quicMaxStreams)
}

// outboundStreams counts the streams this node opened on c that are still
// open.
func outboundStreams(c network.Conn) int {
	n := 0
	for _, s := range c.GetStreams() {
		if s.Stat().Direction == network.DirOutbound {
			n++
		}
	}
	return n
}
