package listeners

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	client "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	ma "github.com/multiformats/go-multiaddr"
)

// DirectPaths tells forwards whether a direct connection to a peer they
// reach only through a relay can still come (nat.PunchTracker is one).
// Without it a forward waits its whole dial timeout on every connection.
type DirectPaths interface {
	// NoDirectPath returns why waiting for a direct connection to p is
	// pointless, or nil; retry is true when the caller should make hole
	// punching try again (by dialing a fresh relayed connection).
	NoDirectPath(p peer.ID) (reason error, retry bool)
	// Reason is NoDirectPath's reason, without handing out a retry.
	Reason(p peer.ID) error
	// Ended is closed when the current hole punch with p ends.
	Ended(p peer.ID) <-chan struct{}
	// Failed records a wait that ended without a direct connection.
	Failed(p peer.ID, err error)
}

// WithDirectPaths has forwards fail fast, and say why, when hole punching
// to their peer failed (see DirectPaths).
func WithDirectPaths(dp DirectPaths) Option {
	return func(c *config) error {
		if dp == nil {
			return errors.New("direct paths is nil")
		}
		c.direct = dp
		return nil
	}
}

// ErrNoDirectPath is wrapped by the error of a forward whose peer is
// reachable only through a limited relay.
var ErrNoDirectPath = errors.New("no direct connection")

// newStream opens a stream to e's peer. Forwards never carry data over a
// limited (relayed) connection: the relay would cut it, with every stream
// on it, after a few seconds or 128 KiB. NewStream therefore waits for a
// direct connection, which hole punching brings; when punching has failed
// (and until it is retried, at most once a minute) the forward fails at
// once, naming the reason.
func (r *Registry) newStream(ctx context.Context, e *entry) (network.Stream, error) {
	dp := r.cfg.direct
	relayed := limitedConn(r.h.Network().ConnsToPeer(e.peer))
	if dp == nil || relayed == nil {
		return r.plainStream(ctx, e)
	}
	reason, retry := dp.NoDirectPath(e.peer)
	if reason != nil {
		return nil, noDirectPath(e.peer, relayed, reason)
	}
	if retry {
		// DCUtR tries once per relayed connection: a new one is a new try.
		log.Infow("forward: retrying hole punching with a new relayed connection", "peer", e.peer)
		for _, c := range r.h.Network().ConnsToPeer(e.peer) {
			if c.Stat().Limited {
				_ = c.Close()
			}
		}
		if err := r.connect(ctx, e.peer, e.addrs); err != nil {
			dp.Failed(e.peer, err)
			return nil, err
		}
	}

	// Stop waiting as soon as the punch gives up.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ended := dp.Ended(e.peer)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-ended:
			if dp.Reason(e.peer) != nil {
				cancel()
			}
		case <-stop:
		}
	}()
	s, err := r.plainStream(sctx, e)
	if err == nil {
		return s, nil
	}
	if reason := dp.Reason(e.peer); reason != nil {
		return nil, noDirectPath(e.peer, relayed, reason)
	}
	if ctx.Err() != nil && limitedConn(r.h.Network().ConnsToPeer(e.peer)) != nil {
		dp.Failed(e.peer, fmt.Errorf("no hole punching result within the dial timeout (%s)", r.cfg.dialTimeout))
		if reason := dp.Reason(e.peer); reason != nil {
			return nil, noDirectPath(e.peer, relayed, reason)
		}
		return nil, noDirectPath(e.peer, relayed, err)
	}
	return nil, err
}

// plainStream is the host's NewStream, with a failure explained
// (explainStreamLimit, explainTransport).
func (r *Registry) plainStream(ctx context.Context, e *entry) (network.Stream, error) {
	s, err := r.h.NewStream(ctx, e.peer, e.wire)
	if err != nil {
		err = r.explainStreamLimit(e.peer, fmt.Errorf("opening stream: %w", err))
		return nil, r.explainTransport(e, err)
	}
	return s, nil
}

// limitedConn returns a limited connection among conns if no other
// connection exists, else nil.
func limitedConn(conns []network.Conn) network.Conn {
	var limited network.Conn
	for _, c := range conns {
		if !c.Stat().Limited {
			return nil
		}
		limited = c
	}
	return limited
}

// noDirectPath words the error of a forward stuck behind a limited relay:
// the reason, the relay and its limits, and where to look next.
func noDirectPath(p peer.ID, relayed network.Conn, reason error) error {
	relay := "the relay"
	if id := relayOf(relayed.RemoteMultiaddr()); id != "" {
		relay = "the relay " + id.String()
	}
	var limits []string
	if d, ok := relayed.Stat().Extra[client.StatLimitData].(uint64); ok && d > 0 {
		limits = append(limits, byteSize(d))
	}
	if d, ok := relayed.Stat().Extra[client.StatLimitDuration].(time.Duration); ok && d > 0 {
		limits = append(limits, d.String())
	}
	allows := "allows only limited connections"
	if len(limits) > 0 {
		allows = "allows only " + strings.Join(limits, " / ") + " per connection"
	}
	return fmt.Errorf("%w to %s: %w; %s %s, too little to carry a tunnel; see `p2pd status`",
		ErrNoDirectPath, p, reason, relay, allows)
}

// relayOf returns the relay's peer ID in a relayed address
// (.../p2p/RELAY/p2p-circuit...).
func relayOf(a ma.Multiaddr) peer.ID {
	var last peer.ID
	for _, c := range a {
		switch c.Code() {
		case ma.P_P2P:
			if id, err := peer.IDFromBytes(c.RawValue()); err == nil {
				last = id
			}
		case ma.P_CIRCUIT:
			return last
		}
	}
	return ""
}

// byteSize prints n bytes in KiB or MiB when it is a whole number of them.
func byteSize(n uint64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
