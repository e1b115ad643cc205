package listeners

import (
	"context"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
)

// ListenRequest asks for a listen entry.
type ListenRequest struct {
	// Protocol is the protocol to serve. It must start with "/x/" unless
	// AllowCustomProtocol is set.
	Protocol protocol.ID
	// Target is the local TCP, UDP or unix service dialled for each inbound
	// stream; a port must not be 0. A UDP target makes a UDP listen: each
	// inbound stream is a flow of datagrams, sent from a socket of its own.
	Target ma.Multiaddr
	// AllowPeers, when not empty, are the only peers allowed to open the
	// protocol; streams from others are reset before the target is dialled.
	AllowPeers []peer.ID
	// ReportPeerID makes the target receive "<peer id>\n" first.
	ReportPeerID bool
	// AllowCustomProtocol lifts the "/x/" rule.
	AllowCustomProtocol bool
	// Foreground is recorded in Info.
	Foreground bool
}

// Listen sets the host's stream handler for req.Protocol: every inbound
// stream from an allowed peer becomes a connection to req.Target, handed to
// the stream registry. It does no network I/O; ctx is only checked for
// cancellation.
//
// When the target can not be dialled, the stream is reset, the reason is
// logged and kept in the entry's LastError.
func (r *Registry) Listen(ctx context.Context, req ListenRequest) (Info, error) {
	if err := ctx.Err(); err != nil {
		return Info{}, err
	}
	if err := checkProtocol(req.Protocol, req.AllowCustomProtocol); err != nil {
		return Info{}, err
	}
	netw, addr, err := streamDialArgs(req.Target)
	if err != nil {
		return Info{}, fmt.Errorf("%w %s: %w", ErrInvalidTarget, req.Target, err)
	}
	if port, err := req.Target.ValueForProtocol(ma.P_TCP); err == nil && port == "0" {
		return Info{}, ErrPortZero
	}
	if port, err := req.Target.ValueForProtocol(ma.P_UDP); err == nil && port == "0" {
		return Info{}, ErrPortZero
	}
	if req.ReportPeerID && isUDP(netw) {
		return Info{}, ErrReportPeerIDUDP
	}

	e := &entry{
		wire:    wireProtocol(req.Protocol, netw),
		network: netw,
		address: addr,
	}
	e.describe(Info{
		Kind:         KindListen,
		Protocol:     req.Protocol,
		ListenAddr:   r.self,
		TargetAddr:   req.Target,
		AllowPeers:   slices.Clone(req.AllowPeers),
		ReportPeerID: req.ReportPeerID,
		Foreground:   req.Foreground,
		Created:      time.Now(),
	})
	// Handlers outlive the request: keep ctx's values, not its deadline.
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	e.cancel = cancel
	info, err := r.register(hctx, e)
	if err != nil {
		cancel()
		return Info{}, err
	}
	return info, nil
}

// register checks that e's protocol is free, sets its stream handler, adds
// e to the registry and tells the hooks. A protocol may have one TCP (or
// unix) listen and one UDP listen: they speak different wire protocols.
func (r *Registry) register(ctx context.Context, e *entry) (Info, error) {
	p := e.wire
	r.regMu.Lock()
	if err := r.checkServed(p); err != nil {
		r.regMu.Unlock()
		return Info{}, err
	}
	r.mu.Lock()
	exists := slices.ContainsFunc(r.listens, func(o *entry) bool { return o.wire == p })
	r.mu.Unlock()
	if exists {
		r.regMu.Unlock()
		return Info{}, ErrListenerExists
	}

	r.h.SetStreamHandler(p, func(s network.Stream) { r.handleStream(ctx, e, s) })

	r.mu.Lock()
	r.listens = append(r.listens, e) // closed can not change while regMu is held
	info := e.info.clone()
	r.mu.Unlock()
	r.hookMu.Lock() // before regMu is released: no Close can report e first
	r.regMu.Unlock()
	defer r.hookMu.Unlock()

	log.Infow("listen added", "protocol", e.info.Protocol, "addr", e.info.TargetAddr)
	r.added(e)
	return info, nil
}

// handleStream serves one inbound stream of a listen entry. It runs on the
// host's handler goroutine and owns s until it is handed over.
func (r *Registry) handleStream(ctx context.Context, e *entry, s network.Stream) {
	r.mu.Lock()
	if e.stopped {
		r.mu.Unlock()
		_ = s.ResetWithError(CodeListenerClosing)
		return
	}
	e.wg.Add(1)
	r.mu.Unlock()
	defer e.wg.Done()

	remote := s.Conn().RemotePeer()
	if len(e.info.AllowPeers) > 0 && !slices.Contains(e.info.AllowPeers, remote) {
		log.Warnw("listen: refused a peer that is not allowed", "peer", remote, "protocol", e.info.Protocol)
		_ = s.ResetWithError(CodeNotAllowed)
		return
	}

	dctx, cancel := context.WithTimeout(ctx, r.cfg.dialTimeout)
	defer cancel()
	c, err := r.dialLocal(dctx, e)
	if err != nil {
		// Record before resetting, so that a peer seeing the reset finds
		// the reason in LastError.
		if ctx.Err() != nil {
			log.Debugw("listen: dial abandoned, the listener was closed", "peer", remote,
				"protocol", e.info.Protocol, "addr", e.info.TargetAddr)
		} else {
			err = fmt.Errorf("dialling target: %w", err)
			r.recordError(e, err)
			log.Warnw("listen: dialling the target failed", "peer", remote, "protocol", e.info.Protocol,
				"addr", e.info.TargetAddr, "err", err)
		}
		_ = s.ResetWithError(CodeTargetUnreachable)
		return
	}

	if e.info.ReportPeerID {
		if err := writePeerID(c, remote, r.cfg.dialTimeout); err != nil {
			err = fmt.Errorf("reporting peer id to target: %w", err)
			r.recordError(e, err)
			log.Warnw("listen: reporting the peer id failed", "peer", remote, "protocol", e.info.Protocol,
				"addr", e.info.TargetAddr, "err", err)
			_ = s.Reset()
			resetConn(c)
			return
		}
	}

	origin, err := ma.NewComponent("p2p", remote.String())
	if err != nil { // a peer.ID from an authenticated connection always encodes
		_ = s.Reset()
		resetConn(c)
		log.Errorw("listen: encoding the peer id", "peer", remote, "protocol", e.info.Protocol, "err", err)
		return
	}
	if _, err := r.streams.Bridge(s, c, origin.Multiaddr(), e.info.TargetAddr); err != nil {
		err = fmt.Errorf("bridging: %w", err)
		r.recordError(e, err)
		log.Warnw("listen: bridging failed", "peer", remote, "protocol", e.info.Protocol,
			"addr", e.info.TargetAddr, "err", err) // Bridge has reset s and c
	}
}

// writePeerID sends "<id>\n" on c within timeout.
func writePeerID(c net.Conn, id peer.ID, timeout time.Duration) error {
	if err := c.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	if _, err := c.Write([]byte(id.String() + "\n")); err != nil {
		return err
	}
	return c.SetWriteDeadline(time.Time{})
}
