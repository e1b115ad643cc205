package listeners

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/p2pd/p2pd/oneframe"
)

// ForwardRequest asks for a forward entry.
type ForwardRequest struct {
	// Protocol is the protocol the streams speak. It must start with "/x/"
	// unless AllowCustomProtocol is set.
	Protocol protocol.ID
	// Listen is the local TCP, UDP or unix address to listen on; port 0
	// picks a free port. A UDP address makes a UDP forward: each client
	// (source address) becomes a flow of datagrams on a stream of its own.
	Listen ma.Multiaddr
	// Target is /p2p/ID or ADDR/p2p/ID. Addresses given here are used for
	// the whole life of the entry; a peer with no known address is looked
	// up through the PeerFinder. Empty when Rendezvous is set.
	Target ma.Multiaddr
	// Rendezvous, instead of Target, sends each connection to one of the
	// peers advertising this string (found through the RendezvousFinder),
	// chosen as Pick says.
	Rendezvous string
	// Pick is how a Rendezvous forward chooses its peer; "" is DefaultPick.
	// It must be empty for a Target.
	Pick Pick
	// AllowCustomProtocol lifts the "/x/" rule.
	AllowCustomProtocol bool
	// Foreground is recorded in Info.
	Foreground bool
}

// maxAcceptBackoff caps the pause after a failing Accept (for example when
// the process runs out of file descriptors).
const maxAcceptBackoff = time.Second

// Forward binds req.Listen and starts accepting on it: every accepted
// connection is turned into a stream to the target peer speaking
// req.Protocol and handed to the stream registry. ctx bounds only the
// binding; the entry lives until Close, Remove or Shutdown.
//
// When a dial fails, the local connection is closed with a TCP reset, the
// reason is logged and kept in the entry's LastError.
func (r *Registry) Forward(ctx context.Context, req ForwardRequest) (Info, error) {
	if err := checkProtocol(req.Protocol, req.AllowCustomProtocol); err != nil {
		return Info{}, err
	}
	var (
		addrs []ma.Multiaddr
		id    peer.ID
		set   *peerSet
	)
	if req.Rendezvous != "" {
		if len(req.Target) > 0 {
			return Info{}, fmt.Errorf("%w: give a target peer or a rendezvous, not both", ErrInvalidTarget)
		}
		if r.cfg.rendezvous == nil {
			return Info{}, fmt.Errorf("%w @%s: this node cannot look up rendezvous names (is the DHT off?)", ErrInvalidTarget, req.Rendezvous)
		}
		pick, err := ParsePick(string(req.Pick))
		if err != nil {
			return Info{}, err
		}
		set = newPeerSet(req.Rendezvous, pick)
	} else {
		if req.Pick != "" {
			return Info{}, fmt.Errorf("%w: a single target peer leaves nothing to pick; --pick goes with a rendezvous target (@NAME)", ErrInvalidPick)
		}
		var err error
		if addrs, id, err = splitTarget(req.Target); err != nil {
			return Info{}, err
		}
		if id == r.h.ID() {
			return Info{}, ErrSelfTarget
		}
	}
	netw, addr, err := streamDialArgs(req.Listen)
	if err != nil {
		return Info{}, fmt.Errorf("%w %s: %w", ErrInvalidListen, req.Listen, err)
	}
	e := &entry{wire: wireProtocol(req.Protocol, netw)}

	r.regMu.Lock()
	err = r.checkServed(e.wire)
	r.regMu.Unlock()
	if err != nil {
		return Info{}, err
	}

	ln, err := r.listenLocal(ctx, e, netw, addr)
	if err != nil {
		return Info{}, explainBind(req.Listen, err)
	}
	bound, err := manet.FromNetAddr(ln.Addr())
	if err != nil {
		_ = ln.Close()
		return Info{}, fmt.Errorf("listening on %s: reading bound address: %w", req.Listen, err)
	}

	// The loop outlives the request: keep ctx's values, not its deadline.
	loopCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	e.describe(Info{
		Kind:       KindForward,
		Protocol:   req.Protocol,
		ListenAddr: bound,
		TargetAddr: req.Target,
		Rendezvous: req.Rendezvous,
		Foreground: req.Foreground,
		Created:    time.Now(),
	})
	e.cancel = cancel
	e.ln = ln
	e.peer = id
	e.addrs = addrs
	e.set = set
	if set != nil {
		e.info.Pick = set.pick
	} else {
		e.target = p2pTarget(id, req.Target)
	}

	r.regMu.Lock()
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		r.regMu.Unlock()
		cancel()
		_ = ln.Close()
		return Info{}, ErrClosed
	}
	r.forwards = append(r.forwards, e)
	e.wg.Add(1)
	info := e.info.clone()
	r.mu.Unlock()
	r.hookMu.Lock() // before regMu is released: no Close can report e first
	r.regMu.Unlock()
	defer r.hookMu.Unlock()

	go r.acceptLoop(loopCtx, e)
	if set != nil {
		e.wg.Add(1)
		go r.resolveLoop(loopCtx, e)
		log.Infow("forward added", "protocol", req.Protocol, "addr", bound, "rendezvous", req.Rendezvous, "pick", set.pick)
	} else {
		log.Infow("forward added", "protocol", req.Protocol, "addr", bound, "peer", id)
	}
	r.added(e)
	return info, nil
}

// splitTarget parses a forward target into the addresses given with it and
// the peer ID.
func splitTarget(target ma.Multiaddr) ([]ma.Multiaddr, peer.ID, error) {
	if len(target) == 0 {
		return nil, "", fmt.Errorf("%w: target is empty", ErrInvalidTarget)
	}
	transport, id := peer.SplitAddr(target)
	if id == "" {
		return nil, "", fmt.Errorf("%w %s: must end with /p2p/<peer id>", ErrInvalidTarget, target)
	}
	if len(transport) == 0 {
		return nil, id, nil
	}
	for _, c := range transport {
		if c.Code() == ma.P_P2P {
			return nil, "", fmt.Errorf("%w %s: only the last component may be /p2p", ErrInvalidTarget, target)
		}
	}
	return []ma.Multiaddr{transport}, id, nil
}

// streamDialArgs returns the net.Dial/net.Listen arguments of a TCP, UDP
// or unix multiaddr.
func streamDialArgs(a ma.Multiaddr) (string, string, error) {
	if len(a) == 0 {
		return "", "", errors.New("address is empty")
	}
	netw, addr, err := manet.DialArgs(a)
	if err != nil {
		return "", "", err
	}
	if isUDP(netw) {
		if err := checkUDPAddr(a); err != nil {
			return "", "", err
		}
		return netw, addr, nil
	}
	if !strings.HasPrefix(netw, "tcp") && netw != "unix" {
		return "", "", errors.New("not a TCP, UDP or unix address")
	}
	return netw, addr, nil
}

// acceptLoop accepts local connections of a forward until the entry is
// stopped.
func (r *Registry) acceptLoop(ctx context.Context, e *entry) {
	defer e.wg.Done()
	var backoff time.Duration
	for {
		c, err := e.ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), maxAcceptBackoff)
			log.Warnw("forward: accepting a connection failed", "protocol", e.info.Protocol,
				"addr", e.info.ListenAddr, "err", err)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			}
			continue
		}
		backoff = 0
		e.wg.Add(1)
		go r.forwardConn(ctx, e, c)
	}
}

// forwardConn opens a stream to the target for one accepted connection and
// hands both to the stream registry.
func (r *Registry) forwardConn(ctx context.Context, e *entry, c net.Conn) {
	defer e.wg.Done()
	origin, err := manet.FromNetAddr(c.RemoteAddr())
	if err != nil {
		origin = e.info.ListenAddr // unnamed unix peers have no address
	}

	dctx, cancel := context.WithTimeout(ctx, r.cfg.dialTimeout)
	defer cancel()
	s, p, err := r.openStream(dctx, e)
	if err != nil {
		// Record before resetting, so that a client seeing the reset
		// finds the reason in LastError.
		if ctx.Err() != nil {
			log.Debugw("forward: dial abandoned, the forward was closed", "peer", e.peer,
				"protocol", e.info.Protocol, "addr", origin)
		} else {
			r.recordError(e, err)
			log.Warnw("forward: dial failed", "peer", e.peer, "rendezvous", e.info.Rendezvous,
				"protocol", e.info.Protocol, "addr", origin, "err", err)
		}
		resetConn(c)
		return
	}

	target := e.target
	if e.set != nil {
		target = p2pTarget(p, nil)
	}
	s = watchRefusal(s, p, e.info.Protocol, func(re *RefusedError) {
		r.recordError(e, re)
		if e.set != nil {
			e.set.failed(p, time.Now())
		}
		log.Warnw(re.Error(), "protocol", e.info.Protocol, "addr", origin)
	})
	if _, err := r.streams.Bridge(s, c, origin, target); err != nil {
		err = fmt.Errorf("bridging: %w", err)
		r.recordError(e, err)
		log.Warnw("forward: bridging failed", "peer", p, "protocol", e.info.Protocol,
			"addr", origin, "err", err) // Bridge has reset s and c
	}
}

// p2pTarget returns /p2p/<id>, the target a forward records for its
// streams (given, the forward's whole target, if id does not encode).
func p2pTarget(id peer.ID, given ma.Multiaddr) ma.Multiaddr {
	c, err := ma.NewComponent("p2p", id.String())
	if err != nil { // a peer.ID that came out of a multiaddr always encodes
		return given
	}
	return c.Multiaddr()
}

// openStream opens a stream speaking e's protocol to e's target peer, or
// for a rendezvous forward to the peer its Pick chooses, and says which.
func (r *Registry) openStream(ctx context.Context, e *entry) (network.Stream, peer.ID, error) {
	if e.set != nil {
		return r.openPicked(ctx, e)
	}
	s, err := r.openPeer(ctx, e)
	return s, e.peer, err
}

// openPeer connects to e's peer (offering the addresses given with it) and
// opens a stream of e's wire protocol.
func (r *Registry) openPeer(ctx context.Context, e *entry) (network.Stream, error) {
	if r.cfg.oneFrame {
		if s := oneframe.Open(ctx, r.h, e.peer, e.wire); s != nil {
			return s, nil
		}
	}
	if err := r.connect(ctx, e.peer, e.addrs); err != nil {
		return nil, err
	}
	s, err := r.newStream(ctx, e) // direct.go
	if err != nil {
		if re := refusal(e.peer, e.info.Protocol, err); re != nil && !errors.Is(err, ErrTransportMismatch) {
			return nil, re
		}
		return nil, err
	}
	return s, nil
}

// connect makes sure the host is connected to id. The addresses given with
// the target are offered on every call (the peerstore forgets them after
// peerstore.TempAddrTTL). A peer with no address at all is looked up first;
// a peer whose known addresses all fail is looked up once, in case they are
// stale.
func (r *Registry) connect(ctx context.Context, id peer.ID, given []ma.Multiaddr) error {
	if r.h.Network().Connectedness(id) == network.Connected {
		return nil
	}
	ai := peer.AddrInfo{ID: id, Addrs: given}
	lookedUp := false
	if len(given) == 0 && len(r.h.Peerstore().Addrs(id)) == 0 {
		found, err := r.findPeer(ctx, id)
		if err != nil {
			return err
		}
		ai, lookedUp = found, true
	}
	err := r.connectNow(ctx, ai)
	if err == nil {
		return nil
	}
	if lookedUp || r.cfg.finder == nil || ctx.Err() != nil {
		return fmt.Errorf("connecting to peer: %w", err)
	}
	found, ferr := r.findPeer(ctx, id)
	if ferr != nil {
		return fmt.Errorf("connecting to peer: %w; then %w", err, ferr)
	}
	if err := r.connectNow(ctx, found); err != nil {
		return fmt.Errorf("connecting to peer at looked-up addresses: %w", err)
	}
	return nil
}

// connectNow is the host's Connect, except that a dial backoff the swarm
// keeps from earlier failed dials does not refuse it: a connection asks
// for its peer now, and the peer may have just come back (the backoff
// would fail its first connections while `p2pd connect` gets through).
// Dials stay bounded by the connections users make.
func (r *Registry) connectNow(ctx context.Context, ai peer.AddrInfo) error {
	err := r.h.Connect(ctx, ai)
	if err == nil || !errors.Is(err, swarm.ErrDialBackoff) || ctx.Err() != nil {
		return err
	}
	b, ok := r.h.Network().(interface{ Backoff() *swarm.DialBackoff })
	if !ok {
		return err
	}
	log.Debugw("forward: clearing the dial backoff of a peer asked for again", "peer", ai.ID)
	b.Backoff().Clear(ai.ID)
	return r.h.Connect(ctx, ai)
}

// findPeer looks id up through the PeerFinder.
func (r *Registry) findPeer(ctx context.Context, id peer.ID) (peer.AddrInfo, error) {
	if r.cfg.finder == nil {
		return peer.AddrInfo{}, fmt.Errorf("%w %s and no way to look it up", ErrNoAddresses, id)
	}
	found, err := r.cfg.finder.FindPeer(ctx, id)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("looking up peer: %w", err)
	}
	if len(found.Addrs) == 0 {
		return peer.AddrInfo{}, fmt.Errorf("looking up peer: %w %s", ErrNoAddresses, id)
	}
	found.ID = id
	return found, nil
}

// resetConn closes c so that its peer sees a reset rather than an orderly
// end, which would read as a successful empty answer.
func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}
