package discovery

import (
	"context"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Per-peer connection backoff after failed attempts, and how long a peer
// not seen again is remembered.
const (
	connectBackoffMin = 5 * time.Second
	connectBackoffMax = 5 * time.Minute
	forgetAfter       = time.Hour
	// tagWeight is the connection-manager weight of a peer found by a
	// rendezvous loop or mDNS, so trimming prefers to keep it.
	tagWeight = 10
)

// connector connects to the peers one source (a rendezvous string or mDNS)
// finds, reports each once per connection, and backs off per peer after
// failures. It belongs to one loop.
type connector struct {
	h       host.Host
	source  string
	tag     string
	timeout time.Duration
	report  func(source string, ai peer.AddrInfo)
	now     func() time.Time

	mu    sync.Mutex // guards peers
	peers map[peer.ID]*peerState
}

// peerState is what a connector remembers about one peer.
type peerState struct {
	reported bool // reported since it was last seen unconnected
	busy     bool // a connection attempt is in flight
	failures int  // consecutive failed attempts
	next     time.Time
	seen     time.Time
}

func (s *Service) newConnector(source string) *connector {
	return &connector{
		h:       s.h,
		source:  source,
		tag:     "p2pd-discovery:" + source,
		timeout: s.cfg.connectTO,
		report:  s.cfg.onPeerFound,
		now:     time.Now,
		peers:   make(map[peer.ID]*peerState),
	}
}

// handle deals with one found peer, already filtered (see Service.usable):
// if it is connected and not yet reported, it reports it; if it is not
// connected and not backing off, it connects and reports it.
func (c *connector) handle(ctx context.Context, ai peer.AddrInfo) {
	c.mu.Lock()
	st, ok := c.peers[ai.ID]
	if !ok {
		st = &peerState{}
		c.peers[ai.ID] = st
	}
	st.seen = c.now()
	if st.busy {
		c.mu.Unlock()
		return
	}
	if c.h.Network().Connectedness(ai.ID) == network.Connected {
		report := !st.reported
		st.reported = true
		c.mu.Unlock()
		if report {
			c.found(ai)
		}
		return
	}
	st.reported = false
	if c.now().Before(st.next) {
		c.mu.Unlock()
		return
	}
	st.busy = true
	c.mu.Unlock()

	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	err := c.h.Connect(cctx, ai)
	cancel()

	c.mu.Lock()
	st.busy = false
	if err != nil {
		if ctx.Err() != nil { // shutting down: not the peer's fault
			c.mu.Unlock()
			return
		}
		st.failures++
		wait := backoff(st.failures)
		st.next = c.now().Add(wait)
		c.mu.Unlock()
		if st.failures == 1 { // retries are quiet
			log.Infow("cannot connect to found peer", "source", c.source, "peer", ai.ID, "retry_in", wait.String(), "err", dialReason(err))
		} else {
			log.Debugw("cannot connect to found peer", "source", c.source, "peer", ai.ID, "addr", ai.Addrs, "retry_in", wait.String(), "err", err)
		}
		return
	}
	st.failures, st.next, st.reported = 0, time.Time{}, true
	c.mu.Unlock()
	c.found(ai)
}

// backoff is the wait after the n-th consecutive failure (n >= 1).
func backoff(n int) time.Duration {
	d := connectBackoffMin
	for i := 1; i < n && d < connectBackoffMax; i++ {
		d *= 2
	}
	return min(d, connectBackoffMax)
}

func (c *connector) found(ai peer.AddrInfo) {
	c.h.ConnManager().TagPeer(ai.ID, c.tag, tagWeight)
	log.Infow("found peer", "source", c.source, "peer", ai.ID, "addr", ai.Addrs)
	if c.report != nil {
		c.report(c.source, ai)
	}
}

// prune forgets peers not seen for forgetAfter.
func (c *connector) prune() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, st := range c.peers {
		if !st.busy && c.now().Sub(st.seen) > forgetAfter {
			delete(c.peers, id)
			c.h.ConnManager().UntagPeer(id, c.tag)
		}
	}
}

// release removes the connection-manager tags this connector set.
func (c *connector) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id := range c.peers {
		c.h.ConnManager().UntagPeer(id, c.tag)
	}
}
