package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/p2pd/p2pd/api"
	"github.com/p2pd/p2pd/listeners"
	"github.com/p2pd/p2pd/repo"
)

// tunnelsFileVersion is the format version of REPO/tunnels.json.
const tunnelsFileVersion = 1

// failedRetryInterval is how often the daemon retries the persisted tunnels
// it could not restore (a forward whose port was taken comes back soon after
// the port is freed). `p2pd ls --retry` retries at once.
const failedRetryInterval = 5 * time.Second

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
	Pick          string   `json:"pick,omitempty"` // a forward to @NAME
}

// key identifies an entry for finding exact duplicates.
func (s savedTunnel) key() string {
	return strings.Join([]string{s.Kind, s.Protocol, s.ListenAddress, s.TargetAddress,
		strings.Join(s.AllowPeers, ","), fmt.Sprint(s.ReportPeerID)}, "\x00")
}

// failedTunnel is a persisted entry that could not be restored. It stays in
// tunnels.json, shows in `ls` with state "failed", is retried, and can be
// closed.
type failedTunnel struct {
	saved savedTunnel
	err   string
	at    time.Time
}

// tunnelStore is the daemon's side of tunnels.json: the entries of the file
// that are not in the listener registry, and the writer of the file.
type tunnelStore struct {
	repo    *repo.Repo
	persist *persister

	// retryMu serialises retries of failed entries with their closing, so
	// that a closed entry is never brought back by a retry in progress.
	retryMu sync.Mutex

	mu sync.Mutex // guards everything below
	// frozen stops writing once shutdown begins (shutdown empties the
	// registry, which must not empty the file).
	frozen bool
	// blocked, when set, is why the file must not be written this run (it
	// could not be read nor moved aside); every save fails with it.
	blocked error
	// failed are saved entries that could not be restored this run.
	failed []*failedTunnel
	// skipped are entries of the file this version cannot decode (an
	// unknown field or kind, a wrong type); they are written back as they
	// were.
	skipped []json.RawMessage
	// extra are top-level fields of the file other than version and
	// tunnels (a newer p2pd's), written back as they were.
	extra map[string]json.RawMessage
	// written is what the last successful write put in the file.
	written []byte
	// beforeWrite, when set (by tests, before Start), runs before each
	// write of the file.
	beforeWrite func()
}

// loadedTunnels is what readTunnels found in tunnels.json.
type loadedTunnels struct {
	entries []savedTunnel
	skipped []json.RawMessage
	extra   map[string]json.RawMessage
}

// readTunnels reads and decodes tunnels.json entry by entry: one entry that
// does not decode is reported and kept aside, the others are returned. A
// file that cannot be read or is not a tunnels file at all is an error
// (errUnreadable); a missing file is no entries.
func readTunnels(r *repo.Repo) (loadedTunnels, error) {
	var out loadedTunnels
	b, err := os.ReadFile(r.File(repo.TunnelsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return out, fmt.Errorf("%w: %w", errUnreadable, err)
	}
	var top map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&top); err != nil {
		return out, fmt.Errorf("%w: %w", errUnreadable, err)
	}
	if off := dec.InputOffset(); len(bytes.TrimSpace(b[off:])) != 0 {
		return out, fmt.Errorf("%w: data after the JSON object at offset %d", errUnreadable, off)
	}
	if top == nil {
		return out, fmt.Errorf("%w: not a JSON object", errUnreadable)
	}
	var version int
	if err := json.Unmarshal(top["version"], &version); err != nil {
		return out, fmt.Errorf("%w: version: %w", errUnreadable, err)
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(top["tunnels"], &raw); err != nil {
		return out, fmt.Errorf("%w: tunnels: %w", errUnreadable, err)
	}
	if version != tunnelsFileVersion {
		log.Warnw("tunnels.json has another format version; reading the entries this version knows", "version", version, "known", tunnelsFileVersion)
	}
	delete(top, "version")
	delete(top, "tunnels")
	if len(top) > 0 {
		out.extra = top
	}
	for i, e := range raw {
		s, err := decodeSavedTunnel(e)
		if err != nil {
			log.Errorw("skipping an entry of tunnels.json; it is kept in the file as it is",
				"entry", i+1, "of", len(raw), "reason", err, "json", string(e))
			out.skipped = append(out.skipped, e)
			continue
		}
		out.entries = append(out.entries, s)
	}
	return out, nil
}

// errUnreadable marks a tunnels.json that is not a tunnels file at all.
var errUnreadable = errors.New("tunnels.json cannot be read")

// decodeSavedTunnel decodes one entry strictly: a field this version does
// not know (a newer p2pd's) would be lost if the entry were rewritten.
func decodeSavedTunnel(b []byte) (savedTunnel, error) {
	var s savedTunnel
	if err := api.Decode(b, &s); err != nil { // strict: invalid UTF-8 too
		return s, err
	}
	switch listeners.Kind(s.Kind) {
	case listeners.KindForward, listeners.KindListen:
	default:
		return s, fmt.Errorf("unknown kind %q", s.Kind)
	}
	return s, nil
}

// encode renders the file: the registry's persistent entries, then the
// failed and the skipped ones, with the extra top-level fields.
func (t *tunnelStore) encode(active []listeners.Info) ([]byte, error) {
	list := []json.RawMessage{}
	add := func(s savedTunnel) error {
		b, err := json.Marshal(s)
		if err != nil {
			return err
		}
		list = append(list, b)
		return nil
	}
	for _, i := range active {
		if i.Foreground {
			continue
		}
		if err := add(saveInfo(i)); err != nil {
			return nil, err
		}
	}
	for _, f := range t.failed {
		if err := add(f.saved); err != nil {
			return nil, err
		}
	}
	list = append(list, t.skipped...)
	top := map[string]any{}
	for k, v := range t.extra {
		top[k] = v
	}
	top["version"] = tunnelsFileVersion
	top["tunnels"] = list
	b, err := json.MarshalIndent(top, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding tunnels.json: %w", err)
	}
	return append(b, '\n'), nil
}

// saveInfo is the saved form of a registry entry.
func saveInfo(i listeners.Info) savedTunnel {
	s := savedTunnel{Kind: string(i.Kind), Protocol: string(i.Protocol), ReportPeerID: i.ReportPeerID}
	if i.Kind == listeners.KindForward && len(i.ListenAddr) > 0 {
		s.ListenAddress = i.ListenAddr.String()
	}
	if len(i.TargetAddr) > 0 {
		s.TargetAddress = i.TargetAddr.String()
	}
	if i.Rendezvous != "" {
		s.TargetAddress, s.Pick = api.RendezvousPrefix+i.Rendezvous, string(i.Pick)
	}
	for _, p := range i.AllowPeers {
		s.AllowPeers = append(s.AllowPeers, p.String())
	}
	return s
}

// writeTunnels writes tunnels.json if what it should hold changed. It runs
// on the persister's goroutine only.
func (d *Daemon) writeTunnels() error {
	t := &d.tunnels
	// The registry first, then the failed entries: an entry restored
	// meanwhile joins the registry before it leaves the failed list, so it
	// may be missing from this write (the next one, which its change
	// asked for, has it) but is never written twice.
	if t.beforeWrite != nil {
		t.beforeWrite()
	}
	active := d.listeners.List()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.frozen {
		return nil
	}
	if t.blocked != nil {
		return t.blocked
	}
	b, err := t.encode(active)
	if err != nil {
		return err
	}
	if bytes.Equal(b, t.written) {
		return nil
	}
	if err := t.repo.WriteFile(repo.TunnelsFile, b); err != nil {
		log.Errorw("saving tunnels", "err", err)
		return err
	}
	t.written = b
	return nil
}

// tunnelsChanged is the registry's change hook: it asks for a write and
// returns at once.
func (d *Daemon) tunnelsChanged() { d.tunnels.persist.request() }

// saveTunnels waits until every change made so far is on disk. The wait
// is not bounded by a request's context: the caller must learn whether to
// roll back, and the writer runs until after the API has stopped.
func (d *Daemon) saveTunnels() error {
	if err := d.tunnels.persist.sync(context.Background()); err != nil {
		return fmt.Errorf("saving %s: %w", d.repo.File(repo.TunnelsFile), err)
	}
	return nil
}

func (t *tunnelStore) freeze() {
	t.mu.Lock()
	t.frozen = true
	t.mu.Unlock()
}

// restoreTunnels recreates the entries of tunnels.json. An entry that
// cannot be restored is kept as a failed entry; one that cannot be decoded
// is kept in the file as it is; a file that cannot be read at all is moved
// aside. Each case is logged.
func (d *Daemon) restoreTunnels(ctx context.Context) {
	t := &d.tunnels
	loaded, err := readTunnels(d.repo)
	if err != nil {
		aside, merr := d.repo.MoveAside(repo.TunnelsFile, time.Now())
		if merr != nil {
			// Never overwrite what could not be read nor moved away.
			log.Errorw("tunnels.json cannot be read nor moved aside; no tunnel can be added or closed this run",
				"err", err, "move_err", merr)
			t.mu.Lock()
			t.blocked = fmt.Errorf("%w, and %w: not writing over it", err, merr)
			t.mu.Unlock()
			return
		}
		log.Errorw("tunnels.json cannot be read; moved aside, starting without its tunnels",
			"err", err, "moved_to", aside)
		return
	}
	t.mu.Lock()
	t.skipped, t.extra = loaded.skipped, loaded.extra
	t.mu.Unlock()
	seen := map[string]bool{}
	for _, s := range loaded.entries {
		if seen[s.key()] {
			log.Warnw("dropping a duplicate entry of tunnels.json", "kind", s.Kind, "protocol", s.Protocol,
				"listen", s.ListenAddress, "target", s.TargetAddress)
			continue
		}
		seen[s.key()] = true
		if err := d.restoreTunnel(ctx, s); err != nil {
			log.Errorw("restoring tunnel; it is kept, shown by `p2pd ls` as failed and retried", "kind", s.Kind, "protocol", s.Protocol,
				"listen", s.ListenAddress, "target", s.TargetAddress, "err", err)
			t.mu.Lock()
			t.failed = append(t.failed, &failedTunnel{saved: s, err: err.Error(), at: time.Now()})
			t.mu.Unlock()
		}
	}
}

func (d *Daemon) restoreTunnel(ctx context.Context, s savedTunnel) error {
	switch listeners.Kind(s.Kind) {
	case listeners.KindForward:
		listen, err := ma.NewMultiaddr(s.ListenAddress)
		if err != nil {
			return fmt.Errorf("invalid listen address %q: %w", s.ListenAddress, err)
		}
		req := listeners.ForwardRequest{
			Protocol: protocol.ID(s.Protocol), Listen: listen, Pick: listeners.Pick(s.Pick), AllowCustomProtocol: true,
		}
		if req.Rendezvous, err = forwardTarget(s.TargetAddress, &req.Target); err != nil {
			return fmt.Errorf("invalid target address %q: %w", s.TargetAddress, err)
		}
		_, err = d.listeners.Forward(ctx, req)
		return err
	case listeners.KindListen:
		target, err := ma.NewMultiaddr(s.TargetAddress)
		if err != nil {
			return fmt.Errorf("invalid target address %q: %w", s.TargetAddress, err)
		}
		req := listeners.ListenRequest{
			Protocol: protocol.ID(s.Protocol), Target: target, ReportPeerID: s.ReportPeerID, AllowCustomProtocol: true,
		}
		for _, p := range s.AllowPeers {
			id, err := peer.Decode(p)
			if err != nil {
				return fmt.Errorf("invalid allowed peer %q: %w", p, err)
			}
			req.AllowPeers = append(req.AllowPeers, id)
		}
		_, err = d.listeners.Listen(ctx, req)
		return err
	}
	return errors.New("unknown tunnel kind " + s.Kind)
}

// supersede drops the failed entries that the new registry entry i
// restores: re-adding a failed forward by hand (or a retry bringing it back)
// never leaves it twice in the file. Only an identical entry counts: a
// different tunnel that happens to take a failed one's port leaves the
// failed one listed, for the user to decide.
func (t *tunnelStore) supersede(i listeners.Info) {
	if i.Foreground {
		return
	}
	key := saveInfo(i).key()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failed = slices.DeleteFunc(t.failed, func(f *failedTunnel) bool { return f.saved.key() == key })
}

// failedList returns the failed entries.
func (t *tunnelStore) failedList() []*failedTunnel {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.failed)
}

// retryFailed tries to restore every failed entry once and returns how many
// came back. Restored entries leave the failed list through supersede.
func (d *Daemon) retryFailed(ctx context.Context) int {
	t := &d.tunnels
	t.retryMu.Lock()
	defer t.retryMu.Unlock()
	restored := 0
	for _, f := range t.failedList() {
		err := d.restoreTunnel(ctx, f.saved)
		t.mu.Lock()
		if err == nil {
			// Normally gone already (supersede), unless the restored
			// entry is written differently (a target in another form).
			t.failed = slices.DeleteFunc(t.failed, func(o *failedTunnel) bool { return o == f })
		} else if err.Error() != f.err {
			f.err, f.at = err.Error(), time.Now()
		}
		t.mu.Unlock()
		if err == nil {
			restored++
			log.Infow("restored a tunnel that had failed", "kind", f.saved.Kind, "protocol", f.saved.Protocol,
				"listen", f.saved.ListenAddress, "target", f.saved.TargetAddress)
		}
	}
	return restored
}

// retryLoop retries the failed entries every failedRetryInterval while
// there are any, until the daemon stops. It is owned by d.wg.
func (d *Daemon) retryLoop() {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		tick := time.NewTicker(d.cfg.retryInterval)
		defer tick.Stop()
		for {
			select {
			case <-d.ctx.Done():
				return
			case <-tick.C:
			}
			if len(d.tunnels.failedList()) == 0 {
				continue
			}
			if d.retryFailed(d.ctx) > 0 {
				if err := d.saveTunnels(); err != nil {
					log.Errorw("saving restored tunnels", "err", err)
				}
			}
		}
	}()
}

// closeFailed removes the failed entries m selects and returns how many.
func (d *Daemon) closeFailed(m listeners.Match) int {
	t := &d.tunnels
	t.retryMu.Lock()
	defer t.retryMu.Unlock()
	self := d.selfAddr()
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(t.failed)
	t.failed = slices.DeleteFunc(t.failed, func(f *failedTunnel) bool { return matchSaved(m, f.saved, self) })
	return n - len(t.failed)
}

// matchSaved is listeners.Match.matches for a failed entry.
func matchSaved(m listeners.Match, s savedTunnel, self ma.Multiaddr) bool {
	if m.All {
		return true
	}
	if m.Protocol != "" && string(m.Protocol) != s.Protocol {
		return false
	}
	if len(m.Listen) > 0 && !sameAddr(m.Listen, savedListen(s, self)) {
		return false
	}
	if len(m.Target) > 0 && !sameAddr(m.Target, s.TargetAddress) {
		return false
	}
	if m.Rendezvous != "" && s.TargetAddress != api.RendezvousPrefix+m.Rendezvous {
		return false
	}
	return true
}

// savedListen is the listen address `ls` shows for a saved entry.
func savedListen(s savedTunnel, self ma.Multiaddr) string {
	if s.Kind == string(listeners.KindListen) {
		return self.String()
	}
	return s.ListenAddress
}

func sameAddr(m ma.Multiaddr, s string) bool {
	a, err := ma.NewMultiaddr(s)
	if err != nil {
		return m.String() == s
	}
	return m.Equal(a)
}

// selfAddr is /p2p/<own id>, the listen address of every listen entry.
func (d *Daemon) selfAddr() ma.Multiaddr {
	return ma.StringCast("/p2p/" + d.host.ID().String())
}

// failedJSON is the API form of a failed entry.
func failedJSON(f *failedTunnel, self ma.Multiaddr) api.Listener {
	s := f.saved
	at := f.at
	out := api.Listener{
		Kind:          s.Kind,
		Protocol:      s.Protocol,
		ListenAddress: savedListen(s, self),
		TargetAddress: s.TargetAddress,
		State:         api.StateFailed,
		AllowedPeers:  []string{},
		ReportPeerID:  s.ReportPeerID,
		LastError:     f.err,
		LastErrorAt:   &at,
	}
	if len(s.AllowPeers) > 0 {
		out.AllowedPeers = slices.Clone(s.AllowPeers)
		out.AllowPeers = slices.Clone(s.AllowPeers)
	}
	return out
}

// listenersJSON is the API's listener list: forwards first, then listens,
// each kind's failed entries after its active ones.
func (d *Daemon) listenersJSON() []api.Listener {
	active := d.listeners.List()
	failed := d.tunnels.failedList()
	// A failed entry that an active one restores is on its way out
	// (supersede runs just after the registry adds the active one): list
	// it once, as active.
	restored := make(map[string]bool, len(active))
	for _, i := range active {
		if !i.Foreground {
			restored[saveInfo(i).key()] = true
		}
	}
	failed = slices.DeleteFunc(failed, func(f *failedTunnel) bool { return restored[f.saved.key()] })
	self := d.selfAddr()
	out := make([]api.Listener, 0, len(active)+len(failed))
	for _, kind := range []listeners.Kind{listeners.KindForward, listeners.KindListen} {
		for _, i := range active {
			if i.Kind == kind {
				out = append(out, listenerJSON(i))
			}
		}
		for _, f := range failed {
			if f.saved.Kind == string(kind) {
				out = append(out, failedJSON(f, self))
			}
		}
	}
	return out
}

// handleRetry retries the failed entries now and answers with the listener
// list (`p2pd ls --retry`).
func (d *Daemon) handleRetry(w http.ResponseWriter, r *http.Request) error {
	if d.retryFailed(r.Context()) > 0 {
		if err := d.saveTunnels(); err != nil {
			return err
		}
	}
	writeJSON(w, http.StatusOK, d.listenersJSON())
	return nil
}
