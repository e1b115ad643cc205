package listeners

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Pick is how a forward to a rendezvous name chooses the peer for each new
// connection.
type Pick string

// The ways to pick.
const (
	// PickFailover stays on one peer while it works and moves to the next
	// when a stream to it fails.
	PickFailover Pick = "failover"
	// PickRoundRobin spreads connections over the peers in turn.
	PickRoundRobin Pick = "round-robin"
)

// DefaultPick is the Pick of a rendezvous forward that names none.
const DefaultPick = PickFailover

// ParsePick checks a --pick value; "" is DefaultPick.
func ParsePick(s string) (Pick, error) {
	switch Pick(s) {
	case "":
		return DefaultPick, nil
	case PickFailover, PickRoundRobin:
		return Pick(s), nil
	}
	return "", fmt.Errorf("%w %q: want %s or %s", ErrInvalidPick, s, PickFailover, PickRoundRobin)
}

// RendezvousFinder looks up the peers advertising a rendezvous string
// (*discovery.Service satisfies it). The Registry uses it for forwards to
// @NAME.
type RendezvousFinder interface {
	FindAll(ctx context.Context, ns string) ([]peer.AddrInfo, error)
}

// Rendezvous forward timings.
const (
	// resolveEvery is how often the peers advertising a name are looked up
	// again while some are known.
	resolveEvery = 30 * time.Second
	// resolveRetryMin is the first wait before looking again when a lookup
	// failed or found nobody; it doubles up to resolveEvery.
	resolveRetryMin = time.Second
	// resolveTimeout bounds one lookup.
	resolveTimeout = time.Minute
	// skipDead is how long a peer whose stream failed is tried only after
	// the others.
	skipDead = 30 * time.Second
	// maxPickTries is how many peers one connection tries.
	maxPickTries = 3
)

// peerSet is what a forward to a rendezvous name knows of the peers
// advertising it, and how it picks among them.
type peerSet struct {
	name string
	pick Pick

	mu      sync.Mutex
	peers   []peer.AddrInfo       // the last lookup's answer, sorted by ID
	dead    map[peer.ID]time.Time // a stream failed: tried last until then
	current peer.ID               // the peer last used successfully
	next    int                   // round-robin: where the next turn starts
	looked  chan struct{}         // closed when the lookup in progress (or next) ends
	wake    chan struct{}         // asks the resolve loop for a lookup now
}

func newPeerSet(name string, pick Pick) *peerSet {
	return &peerSet{name: name, pick: pick, dead: map[peer.ID]time.Time{},
		looked: make(chan struct{}), wake: make(chan struct{}, 1)}
}

// update replaces the peers with a lookup's answer and wakes the waiters.
func (s *peerSet) update(found []peer.AddrInfo) {
	found = slices.Clone(found)
	slices.SortFunc(found, func(a, b peer.AddrInfo) int { return strings.Compare(string(a.ID), string(b.ID)) })
	s.mu.Lock()
	defer s.mu.Unlock()
	s.peers = found
	for id := range s.dead {
		if !slices.ContainsFunc(found, func(ai peer.AddrInfo) bool { return ai.ID == id }) {
			delete(s.dead, id)
		}
	}
	close(s.looked)
	s.looked = make(chan struct{})
}

// lookupDone returns a channel closed when the next lookup ends.
func (s *peerSet) lookupDone() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.looked
}

// askLookup asks the resolve loop for a lookup now.
func (s *peerSet) askLookup() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// candidates returns the peers to try for one connection, best first, at
// most maxPickTries: the working ones in the pick's order, then those whose
// streams failed lately, the longest-failed first.
func (s *peerSet) candidates(now time.Time) []peer.AddrInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	var alive, dead []peer.AddrInfo
	for _, ai := range s.peers {
		if until, ok := s.dead[ai.ID]; ok && now.Before(until) {
			dead = append(dead, ai)
		} else {
			alive = append(alive, ai)
		}
	}
	switch s.pick {
	case PickRoundRobin:
		if n := len(alive); n > 0 {
			start := s.next % n
			alive = append(alive[start:], alive[:start]...)
			s.next = start + 1
		}
	default: // failover: the current peer first, while it works
		if i := slices.IndexFunc(alive, func(ai peer.AddrInfo) bool { return ai.ID == s.current }); i > 0 {
			cur := alive[i]
			alive = append([]peer.AddrInfo{cur}, slices.Delete(alive, i, i+1)...)
		}
	}
	slices.SortStableFunc(dead, func(a, b peer.AddrInfo) int { return s.dead[a.ID].Compare(s.dead[b.ID]) })
	out := append(alive, dead...)
	return out[:min(len(out), maxPickTries)]
}

// worked records a stream to p that opened.
func (s *peerSet) worked(p peer.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.current = p
	delete(s.dead, p)
}

// failed records a stream to p that failed: p is tried last for a while.
func (s *peerSet) failed(p peer.ID, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dead[p] = now.Add(skipDead)
	if s.current == p {
		s.current = ""
	}
}

// describe fills in the peer in use and the candidates of info.
func (s *peerSet) describe(info *Info) {
	s.mu.Lock()
	defer s.mu.Unlock()
	info.Peer = s.current
	info.Candidates = make([]peer.ID, 0, len(s.peers))
	for _, ai := range s.peers {
		info.Candidates = append(info.Candidates, ai.ID)
	}
}

// resolveLoop looks up the peers advertising e's name until ctx ends:
// every resolveEvery while some are known, sooner (from resolveRetryMin,
// doubling) while none are, and at once when a connection finds no peer.
func (r *Registry) resolveLoop(ctx context.Context, e *entry) {
	defer e.wg.Done()
	set := e.set
	retry := resolveRetryMin
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-set.wake:
		}
		qctx, cancel := context.WithTimeout(ctx, resolveTimeout)
		found, err := r.cfg.rendezvous.FindAll(qctx, set.name)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil && len(found) == 0 {
			log.Debugw("forward: looking up the rendezvous failed", "rendezvous", set.name, "err", err)
		}
		set.update(found)
		wait := resolveEvery
		if len(found) == 0 {
			wait, retry = retry, min(2*retry, resolveEvery)
		} else {
			retry = resolveRetryMin
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
	}
}

// openPicked opens a stream for one connection of a rendezvous forward:
// to the peers of its set, in the pick's order, until one works. With no
// peer known it asks for a lookup and waits for it.
func (r *Registry) openPicked(ctx context.Context, e *entry) (network.Stream, peer.ID, error) {
	set := e.set
	cands := set.candidates(time.Now())
	if len(cands) == 0 {
		done := set.lookupDone()
		set.askLookup()
		select {
		case <-done:
		case <-ctx.Done():
		}
		cands = set.candidates(time.Now())
	}
	if len(cands) == 0 {
		return nil, "", &NoPeerError{Rendezvous: set.name, Protocol: string(e.info.Protocol)}
	}
	var errs []string
	for _, ai := range cands {
		s, err := r.openPeer(ctx, e.towards(ai))
		if err == nil {
			set.worked(ai.ID)
			return s, ai.ID, nil
		}
		if ctx.Err() != nil {
			return nil, "", err
		}
		set.failed(ai.ID, time.Now())
		log.Infow("forward: a peer of the rendezvous failed; trying the next", "rendezvous", set.name,
			"peer", ai.ID, "protocol", e.info.Protocol, "err", err)
		errs = append(errs, fmt.Sprintf("%s: %v", ai.ID, oneLine(err)))
	}
	return nil, "", &NoPeerError{Rendezvous: set.name, Protocol: string(e.info.Protocol), Tried: errs}
}

// towards returns an entry that stands for rendezvous forward e dialling
// the peer ai: what dialling reads of an entry (peer, addresses, protocol
// and wire protocol), without e's listener, state or goroutines.
func (e *entry) towards(ai peer.AddrInfo) *entry {
	return &entry{info: Info{Kind: e.info.Kind, Protocol: e.info.Protocol, Rendezvous: e.info.Rendezvous},
		wire: e.wire, peer: ai.ID, addrs: ai.Addrs}
}

// oneLine keeps the first line of err's text (a dial error lists every
// address tried on lines of its own).
func oneLine(err error) string {
	msg, _, _ := strings.Cut(err.Error(), "\n")
	return msg
}
