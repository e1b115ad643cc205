package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/p2pd/p2pd/listeners"
)

// RendezvousFinder looks up the peers advertising a rendezvous name, for
// URLs that name their peer as @NAME. *discovery.Service satisfies it.
type RendezvousFinder interface {
	FindAll(ctx context.Context, ns string) ([]peer.AddrInfo, error)
}

const (
	// nameTTL is how long the peers found advertising a name are used
	// before the name is looked up again.
	nameTTL = 30 * time.Second
	// maxNameTries is how many of a name's peers one request tries.
	maxNameTries = 3
)

// names remembers, per rendezvous name and protocol, the peers found
// advertising the name and the one that last served the protocol: a
// request stays on that peer while it works (failover), as a forward to
// @NAME does.
type names struct {
	find RendezvousFinder

	mu    sync.Mutex // guards known
	known map[nameKey]*nameEntry
}

type nameKey struct {
	name  string
	proto protocol.ID
}

type nameEntry struct {
	peers   []peer.AddrInfo
	at      time.Time // when peers were found
	current peer.ID   // the peer that last served
}

// candidates returns the peers to try for name and proto, the one that
// served last first, looking the name up when what is known is stale.
func (n *names) candidates(ctx context.Context, k nameKey) ([]peer.AddrInfo, error) {
	now := time.Now()
	n.mu.Lock()
	e := n.known[k]
	fresh := e != nil && len(e.peers) > 0 && now.Sub(e.at) < nameTTL
	n.mu.Unlock()
	if !fresh {
		found, err := n.find.FindAll(ctx, k.name)
		if len(found) == 0 {
			if err != nil {
				return nil, fmt.Errorf("looking up rendezvous %s: %w", k.name, err)
			}
			return nil, nil
		}
		n.mu.Lock()
		for key, old := range n.known { // forget stale names
			if now.Sub(old.at) >= nameTTL {
				delete(n.known, key)
			}
		}
		var current peer.ID
		if e != nil {
			current = e.current
		}
		e = &nameEntry{peers: found, at: now, current: current}
		n.known[k] = e
		n.mu.Unlock()
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	out := slices.Clone(e.peers)
	if i := slices.IndexFunc(out, func(ai peer.AddrInfo) bool { return ai.ID == e.current }); i > 0 {
		out[0], out[i] = out[i], out[0]
	}
	return out[:min(len(out), maxNameTries)], nil
}

// served records the peer that served k.
func (n *names) served(k nameKey, p peer.ID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if e := n.known[k]; e != nil {
		e.current = p
	}
}

// failed records that a stream to p for k failed after it opened: the
// next requests try the other peers first.
func (n *names) failed(k nameKey, p peer.ID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	e := n.known[k]
	if e == nil {
		return
	}
	if e.current == p {
		e.current = ""
	}
	if i := slices.IndexFunc(e.peers, func(ai peer.AddrInfo) bool { return ai.ID == p }); i >= 0 {
		ai := e.peers[i]
		e.peers = append(slices.Delete(e.peers, i, i+1), ai)
	}
}

// openByName opens a stream to a peer advertising t.name that serves
// t.proto, and says which peer it is.
func (g *Gateway) openByName(ctx context.Context, t target) (network.Stream, peer.ID, error) {
	k := nameKey{name: t.name, proto: t.proto}
	cands, err := g.names.candidates(ctx, k)
	if err != nil {
		return nil, "", err
	}
	var tried []string
	var errs []error
	for _, ai := range cands {
		s, err := g.open.OpenStream(ctx, ai, t.proto)
		if err == nil {
			g.names.served(k, ai.ID)
			return s, ai.ID, nil
		}
		if ctx.Err() != nil {
			return nil, "", err
		}
		msg, _, _ := strings.Cut(err.Error(), "\n")
		tried = append(tried, fmt.Sprintf("%s: %s", ai.ID, msg))
		errs = append(errs, err)
	}
	noPeer := &listeners.NoPeerError{Rendezvous: "@" + t.name, Protocol: string(t.proto), Tried: tried}
	if len(errs) > 0 && !slices.ContainsFunc(errs, func(err error) bool { return !notServed(err) }) {
		return nil, "", &notServedError{noPeer}
	}
	return nil, "", noPeer
}

// notServedError is a lookup whose peers all said they do not serve the
// protocol.
type notServedError struct{ err error }

func (e *notServedError) Error() string { return e.err.Error() }
func (e *notServedError) Unwrap() error { return e.err }

// isNotServedByName reports whether err is a name whose peers all refused
// the protocol.
func isNotServedByName(err error) bool {
	var ns *notServedError
	return errors.As(err, &ns)
}
