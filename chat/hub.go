package chat

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Retry timing of the opener after a failed attempt or a lost session.
const (
	retryMin = time.Second
	retryMax = 30 * time.Second
)

// protectTag is the connection-manager tag of peers in the room.
const protectTag = "p2pd-chat"

// sendReq asks the hub to broadcast text; the hub answers on reply
// (capacity 1) with the number of peers it queued text for.
type sendReq struct {
	text  string
	reply chan int
}

// dialResult is how an attempt to open a session ended.
type dialResult struct {
	peer peer.ID
	sess *session // nil on error
	err  error
}

// sessionEnd tells the hub a session's reader stopped, and why.
type sessionEnd struct {
	sess *session
	err  error
}

// opener is what the hub remembers about a peer it opens sessions to.
type opener struct {
	dialing  bool      // an attempt is running
	refused  bool      // the peer is in another room: not again on this connection
	failures int       // attempts failed (or sessions lost) in a row
	next     time.Time // no attempt before this
}

// hub owns the room's sessions: it alone registers, replaces, drops and
// broadcasts to them, and decides when to open one. Its fields are used only
// by its goroutine.
type hub struct {
	r        *Room
	self     peer.ID
	sessions map[peer.ID]*session
	openers  map[peer.ID]*opener
}

func newHub(r *Room) *hub {
	return &hub{
		r:        r,
		self:     r.h.ID(),
		sessions: make(map[peer.ID]*session),
		openers:  make(map[peer.ID]*opener),
	}
}

// run is the hub's loop; it returns when ctx ends, closing every session
// (gracefully: what is queued is sent first).
func (h *hub) run(ctx context.Context) {
	r := h.r
	tick := time.NewTicker(r.cfg.sweep)
	defer tick.Stop()
	defer func() {
		for p, s := range h.sessions {
			s.stop(true)
			r.h.ConnManager().Unprotect(p, protectTag)
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
			for p, gone := range r.takePending() {
				if gone && r.h.Network().Connectedness(p) != network.Connected {
					delete(h.openers, p) // a new connection starts afresh
				}
				h.consider(ctx, p)
			}
		case <-tick.C:
			for _, p := range r.h.Network().Peers() {
				h.consider(ctx, p)
			}
		case res := <-r.dialed:
			h.dialDone(ctx, res)
		case s := <-r.register:
			h.install(ctx, s)
		case end := <-r.unregister:
			h.ended(ctx, end)
		case req := <-r.sends:
			req.reply <- h.broadcast(req.text)
		case reply := <-r.lists:
			reply <- h.members()
		}
	}
}

// emit hands a membership event to the outbox, which always takes it.
func (h *hub) emit(ctx context.Context, ev Event) {
	select {
	case h.r.ctl <- ev:
	case <-ctx.Done():
	}
}

// consider opens a session to p if this peer is the opener of the pair (the
// smaller peer ID), p is connected and speaks the protocol, and no session
// or attempt exists and no backoff applies.
func (h *hub) consider(ctx context.Context, p peer.ID) {
	if p == h.self || h.self > p || h.sessions[p] != nil {
		return
	}
	r := h.r
	if r.h.Network().Connectedness(p) != network.Connected {
		return
	}
	if ok, err := r.h.Peerstore().SupportsProtocols(p, ProtocolNickID, ProtocolID); err != nil || len(ok) == 0 {
		return
	}
	o := h.openers[p]
	if o == nil {
		o = &opener{}
		h.openers[p] = o
	}
	if o.dialing || o.refused || time.Now().Before(o.next) {
		return
	}
	o.dialing = true
	r.wg.Add(1) // the hub is counted in r.wg, so Close is not yet waiting
	go func() {
		defer r.wg.Done()
		s, err := r.open(ctx, p)
		select {
		case r.dialed <- dialResult{peer: p, sess: s, err: err}:
		case <-ctx.Done():
			if s != nil {
				s.stream.Reset()
			}
		}
	}()
}

// dialDone records how an attempt to open a session ended.
func (h *hub) dialDone(ctx context.Context, res dialResult) {
	o := h.openers[res.peer]
	if o == nil {
		o = &opener{}
		h.openers[res.peer] = o
	}
	o.dialing = false
	if h.r.cfg.onDial != nil {
		h.r.cfg.onDial(res.peer, res.err)
	}
	switch {
	case res.err == nil:
		o.failures, o.next = 0, time.Time{}
		h.install(ctx, res.sess)
	case errors.Is(res.err, errRefused):
		o.refused = true
		log.Debugw("peer is not in this room", "peer", res.peer, "err", res.err)
	default:
		h.backoff(o)
		log.Debugw("cannot open a chat session", "peer", res.peer, "retry_in", time.Until(o.next).Round(time.Millisecond), "err", res.err)
	}
}

// backoff delays the next attempt after one more failure.
func (h *hub) backoff(o *opener) {
	o.failures++
	d := retryMin
	for i := 1; i < o.failures && d < retryMax; i++ {
		d *= 2
	}
	o.next = time.Now().Add(min(d, retryMax))
}

// install makes s the session with its peer. A session that replaces
// another one is not announced: the peer never left.
func (h *hub) install(ctx context.Context, s *session) {
	old := h.sessions[s.peer]
	h.sessions[s.peer] = s
	if old != nil {
		old.stop(false)
		log.Debugw("chat session replaced", "peer", s.peer)
	} else {
		// Keep the connection while the peer is in the room: the
		// connection manager would otherwise trim it like any other.
		h.r.h.ConnManager().Protect(s.peer, protectTag)
		h.emit(ctx, Event{Kind: PeerJoined, Peer: s.peer, Nick: s.nick})
		log.Infow("peer joined", "peer", s.peer, "room", h.r.name)
	}
	r := h.r
	r.wg.Add(2)
	go func() { defer r.wg.Done(); r.readLoop(ctx, s) }()
	go func() { defer r.wg.Done(); r.writeLoop(s) }()
}

// ended removes a session whose reader stopped, unless it was replaced, and
// announces that its peer left.
func (h *hub) ended(ctx context.Context, end sessionEnd) {
	s := end.sess
	if h.sessions[s.peer] != s {
		return
	}
	delete(h.sessions, s.peer)
	h.r.h.ConnManager().Unprotect(s.peer, protectTag)
	h.emit(ctx, Event{Kind: PeerLeft, Peer: s.peer, Nick: s.nick, Err: end.err})
	log.Infow("peer left", "peer", s.peer, "room", h.r.name, "err", end.err)
	if o := h.openers[s.peer]; o != nil {
		h.backoff(o) // a session that keeps failing is retried less and less often
	}
}

// broadcast queues text for every session and returns for how many. A peer
// whose queue is full is dropped: it will be announced as left.
func (h *hub) broadcast(text string) int {
	n := 0
	for p, s := range h.sessions {
		if s.stopping {
			continue
		}
		if s.enqueue(text) {
			n++
			continue
		}
		log.Warnw("peer too slow to take messages; dropping it", "peer", p)
		s.stopping = true
		s.stop(false)
	}
	return n
}

// members returns the peers with a live session, sorted.
func (h *hub) members() []peer.ID {
	out := make([]peer.ID, 0, len(h.sessions))
	for p, s := range h.sessions {
		if !s.stopping {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}
