package daemon

import (
	"context"
	"errors"
	"io/fs"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/p2pd/p2pd/listeners"
	"github.com/p2pd/p2pd/repo"
)

// tunnelsFileVersion is the format version of REPO/tunnels.json.
const tunnelsFileVersion = 1

// tunnelsFile is the on-disk form of the persisted listeners.
type tunnelsFile struct {
	Version int           `json:"version"`
	Tunnels []savedTunnel `json:"tunnels"`
}

// savedTunnel is one persisted listen or forward. A forward keeps the port
// it really bound, so it comes back where its clients expect it.
type savedTunnel struct {
	Kind          string   `json:"kind"`
	Protocol      string   `json:"protocol"`
	ListenAddress string   `json:"listen_address,omitempty"`
	TargetAddress string   `json:"target_address"`
	AllowPeers    []string `json:"allow_peers,omitempty"`
	ReportPeerID  bool     `json:"report_peer_id,omitempty"`
}

// tunnelStore persists the listener registry to tunnels.json and tracks
// foreground entries held by API requests.
type tunnelStore struct {
	repo *repo.Repo

	mu sync.Mutex // guards everything below and serializes file writes
	// frozen stops saving once shutdown begins (shutdown empties the
	// registry, which must not empty the file).
	frozen bool
	// failed are saved entries that could not be restored this run; they
	// stay in the file so nothing the user set up is lost.
	failed []savedTunnel
	// held maps a foreground entry's key to the channel closed when the
	// entry is removed by anything but its own request.
	held map[string]chan struct{}
}

func (t *tunnelStore) init(r *repo.Repo) {
	t.repo = r
	t.held = map[string]chan struct{}{}
}

func (t *tunnelStore) freeze() {
	t.mu.Lock()
	t.frozen = true
	t.mu.Unlock()
}

func tunnelKey(i listeners.Info) string {
	return string(i.Kind) + " " + string(i.Protocol) + " " + i.ListenAddr.String() + " " + i.TargetAddr.String()
}

func (t *tunnelStore) watch(i listeners.Info) <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	ch := make(chan struct{})
	t.held[tunnelKey(i)] = ch
	return ch
}

func (t *tunnelStore) unwatch(i listeners.Info) {
	t.mu.Lock()
	delete(t.held, tunnelKey(i))
	t.mu.Unlock()
}

// foregroundEnded wakes the request holding a foreground entry that was
// removed (by `p2pd close` or shutdown).
func (d *Daemon) foregroundEnded(i listeners.Info) {
	if !i.Foreground {
		return
	}
	t := &d.tunnels
	t.mu.Lock()
	defer t.mu.Unlock()
	if ch, ok := t.held[tunnelKey(i)]; ok {
		close(ch)
		delete(t.held, tunnelKey(i))
	}
}

// saveTunnels writes the registry's persistent entries to tunnels.json. It
// runs after every change of the registry.
func (d *Daemon) saveTunnels() {
	t := &d.tunnels
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.frozen || t.repo == nil {
		return
	}
	f := tunnelsFile{Version: tunnelsFileVersion, Tunnels: []savedTunnel{}}
	for _, i := range d.listeners.List() {
		if i.Foreground {
			continue
		}
		s := savedTunnel{Kind: string(i.Kind), Protocol: string(i.Protocol), ReportPeerID: i.ReportPeerID}
		if i.Kind == listeners.KindForward && len(i.ListenAddr) > 0 {
			s.ListenAddress = i.ListenAddr.String()
		}
		if len(i.TargetAddr) > 0 {
			s.TargetAddress = i.TargetAddr.String()
		}
		for _, p := range i.AllowPeers {
			s.AllowPeers = append(s.AllowPeers, p.String())
		}
		f.Tunnels = append(f.Tunnels, s)
	}
	f.Tunnels = append(f.Tunnels, t.failed...)
	if err := t.repo.WriteJSON(repo.TunnelsFile, f); err != nil {
		log.Errorw("saving tunnels", "err", err)
	}
}

// restoreTunnels recreates the entries of tunnels.json. An entry that
// cannot be restored is logged and kept in the file.
func (d *Daemon) restoreTunnels(ctx context.Context) {
	var f tunnelsFile
	if err := d.repo.ReadJSON(repo.TunnelsFile, &f); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			log.Errorw("reading tunnels; starting without them (the file is kept)", "err", err)
			d.tunnels.freeze() // never overwrite a file we could not read
		}
		return
	}
	// Hold saves until every entry is back (or known to have failed), so a
	// crash half-way never leaves a shortened file.
	d.tunnels.freeze()
	defer func() {
		d.tunnels.mu.Lock()
		d.tunnels.frozen = false
		d.tunnels.mu.Unlock()
		d.saveTunnels()
	}()
	for _, s := range f.Tunnels {
		if err := d.restoreTunnel(ctx, s); err != nil {
			log.Errorw("restoring tunnel", "kind", s.Kind, "protocol", s.Protocol,
				"listen", s.ListenAddress, "target", s.TargetAddress, "err", err)
			d.tunnels.mu.Lock()
			d.tunnels.failed = append(d.tunnels.failed, s)
			d.tunnels.mu.Unlock()
		}
	}
}

func (d *Daemon) restoreTunnel(ctx context.Context, s savedTunnel) error {
	target, err := ma.NewMultiaddr(s.TargetAddress)
	if err != nil {
		return err
	}
	switch listeners.Kind(s.Kind) {
	case listeners.KindForward:
		listen, err := ma.NewMultiaddr(s.ListenAddress)
		if err != nil {
			return err
		}
		_, err = d.listeners.Forward(ctx, listeners.ForwardRequest{
			Protocol: protocol.ID(s.Protocol), Listen: listen, Target: target, AllowCustomProtocol: true,
		})
		return err
	case listeners.KindListen:
		req := listeners.ListenRequest{
			Protocol: protocol.ID(s.Protocol), Target: target, ReportPeerID: s.ReportPeerID, AllowCustomProtocol: true,
		}
		for _, p := range s.AllowPeers {
			id, err := peer.Decode(p)
			if err != nil {
				return err
			}
			req.AllowPeers = append(req.AllowPeers, id)
		}
		_, err := d.listeners.Listen(ctx, req)
		return err
	}
	return errors.New("unknown tunnel kind " + s.Kind)
}
