package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/p2pd/p2pd/api"
	"github.com/p2pd/p2pd/discovery"
	"github.com/p2pd/p2pd/listeners"
	"github.com/p2pd/p2pd/streams"
	"github.com/p2pd/p2pd/version"
)

func (d *Daemon) handleID(w http.ResponseWriter, r *http.Request) error {
	p2p := ma.StringCast("/p2p/" + d.host.ID().String())
	out := api.ID{
		ID:           d.host.ID().String(),
		Addresses:    []string{},
		AgentVersion: agentVersion(d),
		Protocols:    []string{},
	}
	for _, a := range d.host.Addrs() {
		out.Addresses = append(out.Addresses, a.Encapsulate(p2p).String())
	}
	for _, p := range d.host.Mux().Protocols() {
		out.Protocols = append(out.Protocols, string(p))
	}
	sort.Strings(out.Protocols)
	writeJSON(w, http.StatusOK, out)
	return nil
}

// agentVersion is the user agent the host announces through identify.
func agentVersion(*Daemon) string { return version.UserAgent() }

func (d *Daemon) handlePeers(w http.ResponseWriter, r *http.Request) error {
	out := []api.Peer{}
	for _, p := range sortedPeers(d.host.Network().Peers()) {
		c := bestConn(d.host.Network().ConnsToPeer(p))
		if c == nil {
			continue
		}
		dir := "inbound"
		if c.Stat().Direction == network.DirOutbound {
			dir = "outbound"
		}
		conn, transport := connKind(c)
		out = append(out, api.Peer{
			ID:         p.String(),
			Address:    c.RemoteMultiaddr().String(),
			Direction:  dir,
			LatencyMS:  float64(d.host.Peerstore().LatencyEWMA(p)) / float64(time.Millisecond),
			Connection: conn,
			Transport:  transport,
		})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (d *Daemon) handleConnect(w http.ResponseWriter, r *http.Request) error {
	var req api.ConnectRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	m, err := ma.NewMultiaddr(req.Address)
	if err != nil {
		return badRequest("invalid address %q: %v", req.Address, err)
	}
	ai, err := peer.AddrInfoFromP2pAddr(m)
	if err != nil {
		return badRequest("invalid address %q: want a multiaddr ending in /p2p/<peer id>", req.Address)
	}
	if ai.ID == d.host.ID() {
		return badRequest("%s is this node itself", ai.ID)
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	if len(ai.Addrs) == 0 && len(d.host.Peerstore().Addrs(ai.ID)) == 0 {
		// A bare peer ID: look its addresses up, as a forward does.
		found, err := d.disc.FindPeer(ctx, ai.ID)
		if err != nil {
			return withStatus(http.StatusBadGateway, api.CodeUnavailable,
				fmt.Errorf("no known address for %s and looking it up failed: %w (give its address: ADDR/p2p/ID)", ai.ID, err))
		}
		ai.Addrs = found.Addrs
	}
	if err := d.host.Connect(ctx, *ai); err != nil {
		return withStatus(http.StatusBadGateway, api.CodeUnavailable, fmt.Errorf("connecting to %s: %w", ai.ID, err))
	}
	writeJSON(w, http.StatusOK, api.ConnectResponse{ID: ai.ID.String()})
	return nil
}

// maxFindTimeout bounds a find request's timeout.
const maxFindTimeout = 10 * time.Minute

// handleFind queries the DHT for the rendezvous string until it finds at
// least one peer or the timeout passes (an empty list is then the answer).
func (d *Daemon) handleFind(w http.ResponseWriter, r *http.Request) error {
	var req api.FindRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if req.Rendezvous == "" {
		return badRequest("rendezvous string is empty")
	}
	if err := discovery.ValidateRendezvous(req.Rendezvous); err != nil {
		return badRequest("invalid rendezvous: %v", err)
	}
	timeout := time.Duration(req.Timeout)
	switch {
	case timeout < 0:
		return badRequest("invalid timeout %s: must be positive (or absent for the default)", timeout)
	case timeout > maxFindTimeout:
		return badRequest("invalid timeout %s: at most %s", timeout, maxFindTimeout)
	case timeout == 0:
		timeout = d.cfg.findTimeout
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	out := []api.FoundPeer{}
	asked := false // whether the DHT had peers to ask at some point
	for {
		found, err := d.disc.FindAll(ctx, req.Rendezvous)
		if !errors.Is(err, discovery.ErrNoPeers) && d.disc.RoutingTableSize() > 0 {
			asked = true
		}
		if errors.Is(err, discovery.ErrDHTOff) {
			return withStatus(http.StatusConflict, api.CodeConflict, errors.New("the DHT is off on this daemon (--dht off): find needs it"))
		}
		for _, ai := range found {
			fp := api.FoundPeer{ID: ai.ID.String(), Addresses: []string{}}
			for _, a := range ai.Addrs {
				fp.Addresses = append(fp.Addresses, a.String())
			}
			out = append(out, fp)
		}
		if len(out) > 0 || ctx.Err() != nil {
			break
		}
		if err != nil {
			log.Debugw("find", "rendezvous", req.Rendezvous, "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
	if r.Context().Err() != nil {
		return r.Context().Err()
	}
	if len(out) == 0 && !asked {
		return withStatus(http.StatusServiceUnavailable, api.CodeUnavailable, fmt.Errorf(
			"no DHT peers yet: nothing found for %q in this node's own records, and no other node could be asked (the DHT routing table stayed empty for %s: check the bootstrap peers)",
			req.Rendezvous, timeout))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// registryError maps the listener registry's errors onto API statuses.
func registryError(err error) error {
	switch {
	case errors.Is(err, listeners.ErrListenerExists), errors.Is(err, listeners.ErrAddrInUse):
		return withStatus(http.StatusConflict, api.CodeConflict, err)
	case errors.Is(err, listeners.ErrClosed):
		return withStatus(http.StatusServiceUnavailable, api.CodeUnavailable, err)
	case errors.Is(err, listeners.ErrProtocolNamespace), errors.Is(err, listeners.ErrPortZero),
		errors.Is(err, listeners.ErrNoMatch), errors.Is(err, listeners.ErrAllWithFilter),
		errors.Is(err, listeners.ErrProtocolServed), errors.Is(err, listeners.ErrEmptyProtocol),
		errors.Is(err, listeners.ErrInvalidProtocol), errors.Is(err, listeners.ErrCannotBind),
		errors.Is(err, listeners.ErrInvalidTarget), errors.Is(err, listeners.ErrInvalidListen),
		errors.Is(err, listeners.ErrSelfTarget), errors.Is(err, listeners.ErrReportPeerIDUDP),
		errors.Is(err, listeners.ErrInvalidPick):
		return withStatus(http.StatusBadRequest, api.CodeBadRequest, err)
	}
	return err
}

func parseAddr(what, s string) (ma.Multiaddr, error) {
	if s == "" {
		return nil, badRequest("%s address is empty", what)
	}
	m, err := ma.NewMultiaddr(s)
	if err != nil {
		return nil, badRequest("invalid %s address %q: %v", what, s, err)
	}
	return m, nil
}

// forwardTarget parses a forward target: @NAME is returned as NAME,
// anything else is parsed as a multiaddr into *target.
func forwardTarget(s string, target *ma.Multiaddr) (rendezvous string, err error) {
	if name, ok := strings.CutPrefix(s, api.RendezvousPrefix); ok {
		if name == "" {
			return "", badRequest("invalid target %q: want @NAME, a rendezvous string", s)
		}
		return name, nil
	}
	*target, err = parseAddr("target", s)
	return "", err
}

func (d *Daemon) handleListen(w http.ResponseWriter, r *http.Request) error {
	var req api.ListenRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	target, err := parseAddr("target", req.Target)
	if err != nil {
		return err
	}
	lr := listeners.ListenRequest{
		Protocol:            protocol.ID(req.Protocol),
		Target:              target,
		ReportPeerID:        req.ReportPeerID,
		AllowCustomProtocol: req.AllowCustomProtocol,
		Foreground:          req.Foreground,
	}
	for _, s := range req.AllowPeers {
		id, err := peer.Decode(s)
		if err != nil {
			return badRequest("invalid allowed peer %q: %v", s, err)
		}
		lr.AllowPeers = append(lr.AllowPeers, id)
	}
	info, err := d.listeners.Listen(r.Context(), lr)
	if err != nil {
		return registryError(err)
	}
	return d.answerTunnel(w, r, info)
}

func (d *Daemon) handleForward(w http.ResponseWriter, r *http.Request) error {
	var req api.ForwardRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	listen, err := parseAddr("listen", req.Listen)
	if err != nil {
		return err
	}
	fr := listeners.ForwardRequest{
		Protocol:            protocol.ID(req.Protocol),
		Listen:              listen,
		Pick:                listeners.Pick(req.Pick),
		AllowCustomProtocol: req.AllowCustomProtocol,
		Foreground:          req.Foreground,
	}
	if fr.Rendezvous, err = forwardTarget(req.Target, &fr.Target); err != nil {
		return err
	}
	info, err := d.listeners.Forward(r.Context(), fr)
	if err != nil {
		return registryError(err)
	}
	return d.answerTunnel(w, r, info)
}

// answerTunnel answers a listen or forward request. A persistent entry is
// answered once it is saved in tunnels.json; when the save fails the entry
// is removed again and the request fails with the reason. A foreground
// entry is held: the answer stays open until the client leaves (then the
// entry is removed), the entry is closed by someone else, or the daemon
// stops.
func (d *Daemon) answerTunnel(w http.ResponseWriter, r *http.Request, info listeners.Info) error {
	if !info.Foreground {
		if err := d.saveTunnels(); err != nil {
			d.listeners.Remove(info)
			return fmt.Errorf("%w; the %s was not created", err, info.Kind)
		}
		writeJSON(w, http.StatusOK, listenerJSON(info))
		return nil
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	writeJSON(w, http.StatusOK, listenerJSON(info))
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	select {
	case <-r.Context().Done():
		// The client went away (or the daemon is stopping).
		d.listeners.Remove(info)
	case <-info.Done():
	}
	return nil
}

func (d *Daemon) handleListeners(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, d.listenersJSON())
	return nil
}

func (d *Daemon) handleClose(w http.ResponseWriter, r *http.Request) error {
	var req api.CloseRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	m := listeners.Match{All: req.All, Protocol: protocol.ID(req.Protocol)}
	var err error
	if req.ListenAddress != "" {
		if m.Listen, err = parseAddr("listen", req.ListenAddress); err != nil {
			return err
		}
	}
	if req.TargetAddress != "" {
		if m.Rendezvous, err = forwardTarget(req.TargetAddress, &m.Target); err != nil {
			return err
		}
	}
	n, err := d.listeners.Close(m)
	if err != nil {
		return registryError(err)
	}
	n += d.closeFailed(m)
	if err := d.saveTunnels(); err != nil {
		return fmt.Errorf("closed %d listener(s), but %w: they come back when the daemon restarts", n, err)
	}
	writeJSON(w, http.StatusOK, api.CloseResponse{Closed: n})
	return nil
}

func (d *Daemon) handleStreams(w http.ResponseWriter, r *http.Request) error {
	list := d.streams.List()
	out := make([]api.Stream, 0, len(list))
	for _, s := range list {
		out = append(out, streamJSON(s))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (d *Daemon) handleStreamsClose(w http.ResponseWriter, r *http.Request) error {
	var req api.StreamCloseRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	switch {
	case req.All && req.ID != nil:
		return badRequest("give a stream id or all, not both")
	case req.All:
		writeJSON(w, http.StatusOK, api.CloseResponse{Closed: d.streams.ResetAll()})
		return nil
	case req.ID == nil:
		return badRequest("no id specified")
	}
	if err := d.streams.Reset(*req.ID); err != nil {
		if errors.Is(err, streams.ErrNotFound) {
			return withStatus(http.StatusNotFound, api.CodeNotFound, fmt.Errorf("no stream with id %d", *req.ID))
		}
		return err
	}
	writeJSON(w, http.StatusOK, api.CloseResponse{Closed: 1})
	return nil
}

// handleEvents streams the daemon's events as newline-delimited JSON until
// the client goes away or the daemon stops. A client that reads slowly never
// holds up the daemon: its subscription drops events and says how many (an
// events_dropped line) instead.
func (d *Daemon) handleEvents(w http.ResponseWriter, r *http.Request) error {
	sub := d.events.Subscribe(0)
	defer sub.Close()
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		log.Debugw("event stream", "err", err)
		return nil
	}
	// A client that stopped reading leaves a write blocked; when the
	// request ends (the daemon stops, or the client is gone) unblock it.
	stop := context.AfterFunc(r.Context(), func() { _ = rc.SetWriteDeadline(time.Now()) })
	defer stop()
	enc := json.NewEncoder(w)
	for {
		ev, err := sub.Next(r.Context())
		if err != nil {
			return nil // the client left, the daemon is stopping, or events are closed
		}
		// Send what has piled up in one flush.
		for ok := true; ok; ev, ok = sub.TryNext() {
			if err := enc.Encode(ev); err != nil {
				log.Debugw("event stream ended", "err", err)
				return nil
			}
		}
		if err := rc.Flush(); err != nil {
			log.Debugw("event stream ended", "err", err)
			return nil
		}
	}
}

func listenerJSON(i listeners.Info) api.Listener {
	out := api.Listener{
		Kind:         string(i.Kind),
		Protocol:     string(i.Protocol),
		ReportPeerID: i.ReportPeerID,
		Foreground:   i.Foreground,
		LastError:    i.LastError,
		State:        api.StateActive,
		AllowedPeers: []string{},
	}
	if len(i.ListenAddr) > 0 {
		out.ListenAddress = i.ListenAddr.String()
	}
	if len(i.TargetAddr) > 0 {
		out.TargetAddress = i.TargetAddr.String()
	}
	if i.Rendezvous != "" {
		out.TargetAddress = api.RendezvousPrefix + i.Rendezvous
		out.Pick = string(i.Pick)
		if i.Peer != "" {
			out.Peer = i.Peer.String()
		}
		out.Candidates = []string{}
		for _, p := range i.Candidates {
			out.Candidates = append(out.Candidates, p.String())
		}
	}
	for _, p := range i.AllowPeers {
		out.AllowPeers = append(out.AllowPeers, p.String())
	}
	if len(out.AllowPeers) > 0 {
		out.AllowedPeers = out.AllowPeers
	}
	if !i.LastErrorAt.IsZero() {
		t := i.LastErrorAt
		out.LastErrorAt = &t
	}
	return out
}

func streamJSON(s streams.Info) api.Stream {
	out := api.Stream{
		ID:       s.ID,
		Protocol: string(s.Protocol),
		Peer:     s.Peer.String(),
		BytesIn:  s.BytesIn,
		BytesOut: s.BytesOut,
		Started:  s.Started,
	}
	if len(s.Origin) > 0 {
		out.OriginAddress = s.Origin.String()
	}
	if len(s.Target) > 0 {
		out.TargetAddress = s.Target.String()
	}
	if d := s.Datagrams; d != nil {
		in, o, dropped := d.In, d.Out, d.Dropped
		out.DatagramsIn, out.DatagramsOut, out.Dropped = &in, &o, &dropped
	}
	return out
}
