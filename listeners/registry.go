// Package listeners provides p2pd's listener registry: the set of tunnels
// between local TCP services and libp2p protocols that `p2pd forward`,
// `p2pd listen`, `p2pd ls` and `p2pd close` manage.
//
// A forward entry owns a local TCP (or unix) listener; every connection it
// accepts becomes a libp2p stream to one target peer speaking one protocol.
// A listen entry owns the host's stream handler for one protocol; every
// inbound stream becomes a TCP connection to one local target. In both cases
// the two ends are handed to the stream registry (package streams), which
// copies the bytes, tracks the open stream and protects the peer; closing a
// listener therefore never ends streams already open.
//
// The package does not persist entries (the daemon does, from the OnChange
// hook), does not parse user input other than validating requests, and does
// not copy bytes itself.
package listeners

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	logging "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/p2pd/p2pd/streams"
)

var log = logging.Logger("p2pd/listeners")

// Kind tells a forward entry from a listen entry.
type Kind string

// The two kinds of entries.
const (
	// KindForward is a local listener whose connections become streams to
	// a remote peer.
	KindForward Kind = "forward"
	// KindListen is a protocol handler whose streams become connections to
	// a local service.
	KindListen Kind = "listen"
)

// Info describes one entry of the registry. The Registry hands out copies;
// changing one changes nothing in the registry.
type Info struct {
	// Kind is KindForward or KindListen.
	Kind Kind
	// Protocol is the libp2p protocol the entry speaks.
	Protocol protocol.ID
	// ListenAddr is, for a forward, the address the local listener is
	// really bound to (never port 0); for a listen, /p2p/<own peer id>.
	ListenAddr ma.Multiaddr
	// TargetAddr is, for a forward, the target as given (/p2p/ID or
	// ADDR/p2p/ID); for a listen, the local service's address.
	TargetAddr ma.Multiaddr
	// AllowPeers (listen only), when not empty, are the only peers allowed
	// to open the protocol.
	AllowPeers []peer.ID
	// ReportPeerID (listen only) makes the target receive "<peer id>\n"
	// before the stream's bytes.
	ReportPeerID bool
	// Rendezvous (forward only) is set instead of TargetAddr for a forward
	// to the peers advertising this string; Pick is how it chooses.
	Rendezvous string
	Pick       Pick
	// Peer (rendezvous forward only) is the peer the last connection went
	// to; Candidates are the peers the last lookup found.
	Peer       peer.ID
	Candidates []peer.ID
	// Foreground marks an entry that lives only as long as the command that
	// created it; the registry only records it.
	Foreground bool
	// LastError is why the most recent failed dial of this entry failed
	// (for a forward: looking up or connecting to the peer, or opening the
	// stream; for a listen: dialling the local target). It is kept after
	// later successful dials; LastErrorAt says when it happened. Empty if
	// no dial ever failed.
	LastError string
	// LastErrorAt is when LastError happened; zero if LastError is empty.
	LastErrorAt time.Time
	// Created is when the entry was added.
	Created time.Time

	// done is closed once the entry has been removed and stopped.
	done <-chan struct{}
}

// Done returns a channel closed once the entry has been removed from the
// registry (by Close, Remove or Shutdown) and its goroutines have ended. A
// command holding a foreground entry waits on it: however soon after Forward
// or Listen the entry is closed, the channel says so. The zero Info's Done
// is nil (never ready).
func (i Info) Done() <-chan struct{} { return i.done }

func (i Info) clone() Info {
	i.AllowPeers = slices.Clone(i.AllowPeers)
	i.Candidates = slices.Clone(i.Candidates)
	return i
}

// Match selects entries for Close. Set fields AND together; All selects
// every entry and may not be combined with another field.
type Match struct {
	// All selects every entry.
	All bool
	// Protocol selects entries speaking this protocol.
	Protocol protocol.ID
	// Listen selects entries whose ListenAddr equals it.
	Listen ma.Multiaddr
	// Target selects entries whose TargetAddr equals it.
	Target ma.Multiaddr
	// Rendezvous selects forwards to this rendezvous string.
	Rendezvous string
}

func (m Match) validate() error {
	filtered := m.Protocol != "" || len(m.Listen) > 0 || len(m.Target) > 0 || m.Rendezvous != ""
	switch {
	case m.All && filtered:
		return ErrAllWithFilter
	case !m.All && !filtered:
		return ErrNoMatch
	}
	return nil
}

func (m Match) matches(i *Info) bool {
	if m.All {
		return true
	}
	if m.Protocol != "" && i.Protocol != m.Protocol {
		return false
	}
	if len(m.Listen) > 0 && !i.ListenAddr.Equal(m.Listen) {
		return false
	}
	if len(m.Target) > 0 && !i.TargetAddr.Equal(m.Target) {
		return false
	}
	if m.Rendezvous != "" && i.Rendezvous != m.Rendezvous {
		return false
	}
	return true
}

// describe sets e's Info, with the Done channel, before e is registered.
func (e *entry) describe(info Info) {
	e.done = make(chan struct{})
	info.done = e.done
	e.info = info
}

// entry is one registered forward or listen.
type entry struct {
	// info is the entry's description. Its LastError and LastErrorAt are
	// guarded by Registry.mu; every other field is set before the entry is
	// registered and never changed.
	info Info
	// cancel ends the entry's context: in-flight dials stop and the accept
	// loop gives up.
	cancel context.CancelFunc
	// wg counts the entry's goroutines: the accept loop and per-connection
	// dials of a forward, the running stream handlers of a listen.
	wg sync.WaitGroup
	// stopped is set, under Registry.mu, when the entry is taken out of the
	// registry; a listen's handler then refuses new streams.
	stopped bool
	// done is closed by finish once the entry is stopped (Info.Done).
	done chan struct{}

	// wire is the protocol the entry's streams speak: Protocol for TCP and
	// unix, its UDP form for UDP (see wireProtocol).
	wire protocol.ID

	// Forward only.
	ln     net.Listener   // the local listener
	peer   peer.ID        // the target peer
	addrs  []ma.Multiaddr // addresses given with the target, re-added before each dial
	target ma.Multiaddr   // /p2p/<peer>, the target recorded for each stream
	set    *peerSet       // a rendezvous forward's peers; then peer, addrs and target are unset

	// Listen only.
	network, address string // the target in net.Dial form
}

// Registry holds the forward and listen entries of one host. The zero value
// is not usable; build one with New or NewRegistry. All methods are safe for
// concurrent use.
type Registry struct {
	h       host.Host
	streams *streams.Registry
	cfg     config
	self    ma.Multiaddr // /p2p/<own id>, the ListenAddr of every listen

	// regMu serialises changes to the set of entries together with the
	// changes they make to the host's handler table (SetStreamHandler,
	// RemoveStreamHandler), so that a protocol is never seen half-added or
	// half-removed. It is never held while doing network I/O or waiting
	// for goroutines. Lock order: regMu, hookMu, mu.
	regMu sync.Mutex

	// hookMu serialises calls of the hooks, so that they see additions and
	// removals in the order they happened. Taken after regMu.
	hookMu sync.Mutex

	// mu guards forwards, listens, closed, and the stopped, LastError and
	// LastErrorAt fields of every entry. Never held while calling out.
	mu       sync.Mutex
	forwards []*entry // in creation order
	listens  []*entry // in creation order
	closed   bool     // set by Shutdown
}

// New returns an empty registry for host h that hands bridged connections
// to the stream registry s. It starts nothing and does no I/O. It fails if
// an option is invalid or h or s is nil.
func New(h host.Host, s *streams.Registry, opts ...Option) (*Registry, error) {
	if h == nil {
		return nil, errors.New("creating listener registry: host is nil")
	}
	if s == nil {
		return nil, errors.New("creating listener registry: stream registry is nil")
	}
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, fmt.Errorf("creating listener registry: %w", err)
		}
	}
	self, err := ma.NewComponent("p2p", h.ID().String())
	if err != nil {
		return nil, fmt.Errorf("creating listener registry: own address: %w", err)
	}
	return &Registry{h: h, streams: s, cfg: cfg, self: self.Multiaddr()}, nil
}

// NewRegistry is New for callers whose options are fixed in code: it panics
// where New returns an error (an invalid option, a nil host or stream
// registry). Use New when options come from user configuration.
func NewRegistry(h host.Host, s *streams.Registry, opts ...Option) *Registry {
	r, err := New(h, s, opts...)
	if err != nil {
		panic(err)
	}
	return r
}

// List returns copies of all entries: forwards first, then listens, each in
// creation order.
func (r *Registry) List() []Info {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Info, 0, len(r.forwards)+len(r.listens))
	for _, e := range r.forwards {
		out = append(out, e.view())
	}
	for _, e := range r.listens {
		out = append(out, e.info.clone())
	}
	return out
}

// Close removes and stops every entry m selects and returns how many it
// removed (0 is not an error). A Match without any filter fails with
// ErrNoMatch; All with another filter fails with ErrAllWithFilter.
//
// A closed forward stops accepting and cancels its dials in progress; a
// closed listen stops taking new streams and cancels its target dials in
// progress. Streams already handed to the stream registry stay open. Close
// returns once the entries' goroutines have ended.
func (r *Registry) Close(m Match) (int, error) {
	if err := m.validate(); err != nil {
		return 0, err
	}
	removed := r.take(func(e *entry) bool { return m.matches(&e.info) }, false)
	r.finish(removed, true)
	return len(removed), nil
}

// Remove removes and stops the entry described by info (same kind,
// protocol, addresses and creation time), as Close would. It reports
// whether such an entry was registered. The daemon uses it when the command
// that created a foreground entry ends.
func (r *Registry) Remove(info Info) bool {
	removed := r.take(func(e *entry) bool {
		return e.info.Kind == info.Kind &&
			e.info.Protocol == info.Protocol &&
			e.info.ListenAddr.Equal(info.ListenAddr) &&
			e.info.TargetAddr.Equal(info.TargetAddr) &&
			e.info.Created.Equal(info.Created)
	}, false)
	r.finish(removed, true)
	return len(removed) > 0
}

// Shutdown stops every entry and waits for all goroutines the registry
// started. Later Forward and Listen calls fail with ErrClosed. It calls the
// OnRemove hook for every entry but not the OnChange hook: the entries are
// gone from this process but meant to be restored at the next start. It does
// not touch streams already handed to the stream registry, which its owner
// closes. It is safe to call more than once.
func (r *Registry) Shutdown() error {
	removed := r.take(func(*entry) bool { return true }, true)
	r.finish(removed, false)
	return nil
}

// take removes the selected entries from the registry, marks them stopped
// and removes listen entries' stream handlers. With shutdown it also closes
// the registry to new entries.
func (r *Registry) take(sel func(*entry) bool, shutdown bool) []*entry {
	r.regMu.Lock()
	defer r.regMu.Unlock()

	var removed []*entry
	r.mu.Lock()
	if shutdown {
		r.closed = true
	}
	keep := func(list []*entry) []*entry {
		return slices.DeleteFunc(list, func(e *entry) bool {
			if !sel(e) {
				return false
			}
			e.stopped = true
			removed = append(removed, e)
			return true
		})
	}
	r.forwards = keep(r.forwards)
	r.listens = keep(r.listens)
	r.mu.Unlock()

	for _, e := range removed {
		if e.info.Kind == KindListen {
			r.h.RemoveStreamHandler(e.wire)
		}
	}
	return removed
}

// finish stops the removed entries, waits for their goroutines and tells the
// OnRemove hook, and with changed the OnChange hook.
func (r *Registry) finish(removed []*entry, changed bool) {
	for _, e := range removed {
		e.cancel()
		if e.ln != nil {
			if err := e.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				log.Warnw("closing forward listener", "protocol", e.info.Protocol, "addr", e.info.ListenAddr, "err", err)
			}
		}
	}
	for _, e := range removed {
		e.wg.Wait()
		close(e.done)
		log.Infow("listener closed", "kind", e.info.Kind, "protocol", e.info.Protocol,
			"addr", e.info.ListenAddr, "target", e.info.TargetAddr)
	}
	if len(removed) == 0 {
		return
	}
	r.hookMu.Lock()
	defer r.hookMu.Unlock()
	for _, e := range removed {
		if r.cfg.onRemove != nil {
			r.cfg.onRemove(r.snapshot(e))
		}
	}
	if changed && r.cfg.onChange != nil {
		r.cfg.onChange()
	}
}

// added tells the hooks about a new entry.
func (r *Registry) added(e *entry) {
	if r.cfg.onAdd != nil {
		r.cfg.onAdd(r.snapshot(e))
	}
	if r.cfg.onChange != nil {
		r.cfg.onChange()
	}
}

// snapshot returns a copy of e's Info.
func (r *Registry) snapshot(e *entry) Info {
	r.mu.Lock()
	defer r.mu.Unlock()
	return e.view()
}

// view returns a copy of e's Info with a rendezvous forward's peers.
// Call with Registry.mu held.
func (e *entry) view() Info {
	info := e.info.clone()
	if e.set != nil {
		e.set.describe(&info)
	}
	return info
}

// recordError sets e's LastError.
func (r *Registry) recordError(e *entry, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e.info.LastError = err.Error()
	e.info.LastErrorAt = time.Now()
}

// checkProtocol validates a request's protocol name.
func checkProtocol(p protocol.ID, allowCustom bool) error {
	if err := ValidateProtocol(p); err != nil {
		return err
	}
	if !allowCustom && !hasXPrefix(p) {
		return ErrProtocolNamespace // bare: the SPEC text is the whole message
	}
	return nil
}

func hasXPrefix(p protocol.ID) bool {
	return len(p) >= 3 && p[:3] == "/x/"
}

// checkServed fails if the host has a handler for p (a protocol as spoken
// on the wire) that is not a listen entry of this registry. Call with regMu
// held.
func (r *Registry) checkServed(p protocol.ID) error {
	r.mu.Lock()
	closed := r.closed
	ours := slices.ContainsFunc(r.listens, func(e *entry) bool { return e.wire == p })
	r.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if ours {
		return nil
	}
	if slices.Contains(r.h.Mux().Protocols(), p) {
		return fmt.Errorf("%w: %s", ErrProtocolServed, p)
	}
	return nil
}
