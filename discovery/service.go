package discovery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	logging "github.com/ipfs/go-log/v2"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/discovery"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/routing"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
	ma "github.com/multiformats/go-multiaddr"
	mh "github.com/multiformats/go-multihash"
)

var log = logging.Logger("p2pd/discovery")

var _ discovery.Discovery = (*Service)(nil)

// Service runs the DHT, the bootstrap loop, rendezvous loops and mDNS for
// one host. Build it with New, run it with Start, stop it with Close (before
// closing the host). Its methods are safe for concurrent use.
type Service struct {
	h   host.Host
	cfg config

	// mu guards started, closed, life, cancel, dht, disc, mdns and joins.
	// It is never held while waiting for the network, except in Start,
	// which does no network I/O.
	mu      sync.Mutex
	started bool
	closed  bool
	// life is the lifetime of everything Start starts: derived from Start's
	// ctx and cancelled by Close. It is kept here because the loops and the
	// in-flight queries it bounds are owned by the Service, not by a call.
	life   context.Context
	cancel context.CancelFunc
	dht    *dht.IpfsDHT
	disc   *drouting.RoutingDiscovery
	mdns   interface{ Close() error }
	joins  map[string]*join

	// wg counts every goroutine the Service starts and every DHT call in
	// flight; Close waits for it before closing the DHT.
	wg sync.WaitGroup

	closeOnce sync.Once
	closeErr  error

	mdnsHits atomic.Int64 // mDNS answers received, usable or not
}

// join is one rendezvous loop. cancel and done are nil until the loop runs
// (Join before Start records the string; Start launches it).
type join struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// New builds a Service for h. It validates the options, does no I/O and
// starts nothing.
func New(h host.Host, opts ...Option) (*Service, error) {
	if h == nil {
		return nil, errors.New("discovery needs a host: got nil")
	}
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	return &Service{h: h, cfg: cfg, joins: make(map[string]*join)}, nil
}

// Start creates the DHT (unless the mode is "off"), starts the bootstrap
// loop in the background, starts mDNS (if enabled) and the rendezvous loops
// of strings joined before Start. It returns without waiting for the
// network: unreachable bootstrap peers are logged, never returned. An mDNS
// failure (no multicast interface) is logged too. ctx bounds the life of the
// loops: cancelling it stops them, but Close is still needed to close the
// DHT. Start may be called once.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return ErrClosed
	case s.started:
		return errors.New("discovery service already started")
	}
	life, cancel := context.WithCancel(ctx)

	if s.cfg.mode != ModeOff {
		opts := []dht.Option{
			dht.Mode(dhtMode(s.cfg.mode)),
			dht.ProtocolPrefix(protocol.ID(s.cfg.prefix)),
		}
		if s.cfg.addrFilter != nil {
			opts = append(opts, dht.AddressFilter(s.cfg.addrFilter))
		}
		// No dht.BootstrapPeers: the DHT would dial them one by one on its
		// own goroutine; bootstrapLoop dials them in parallel instead.
		d, err := dht.New(s.h, opts...)
		if err != nil {
			cancel()
			return fmt.Errorf("starting the DHT: %w", err)
		}
		s.dht = d
		s.disc = drouting.NewRoutingDiscovery(d)
		log.Infow("DHT started", "mode", s.cfg.mode, "protocol", s.cfg.prefix+"/kad/1.0.0")
	}
	s.started, s.life, s.cancel = true, life, cancel

	if s.dht != nil {
		d, peers := s.dht, s.cfg.bootstrapPeers()
		s.goLocked(func() { s.bootstrapLoop(life, d, peers) })
		for ns, j := range s.joins {
			s.startJoinLocked(ns, j)
		}
	}
	if s.cfg.mdns {
		s.startMDNSLocked(life)
	}
	return nil
}

// goLocked runs f on a goroutine counted by s.wg. s.mu must be held.
func (s *Service) goLocked(f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

// Close stops every loop and waits for it, stops mDNS and closes the DHT
// (which blocks until the DHT's own goroutines end). Call it before closing
// the host. It is safe to call more than once; later calls return nil.
func (s *Service) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		if s.cancel != nil {
			s.cancel() // under mu: once closed is seen, life is done
		}
		d, m := s.dht, s.mdns
		s.mu.Unlock()

		var errs []error
		if m != nil {
			if err := m.Close(); err != nil {
				errs = append(errs, fmt.Errorf("stopping mDNS: %w", err))
			}
		}
		s.wg.Wait()
		if d != nil {
			if err := d.Close(); err != nil {
				errs = append(errs, fmt.Errorf("closing the DHT: %w", err))
			}
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// handle is what a DHT operation needs; acquire hands it out.
type handle struct {
	d    *dht.IpfsDHT
	disc *drouting.RoutingDiscovery
	life context.Context
}

// acquire returns the DHT for one operation and counts the operation in
// s.wg: the caller must call s.wg.Done when it no longer uses the DHT.
func (s *Service) acquire() (handle, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return handle{}, ErrClosed
	case s.cfg.mode == ModeOff:
		return handle{}, ErrDHTOff
	case !s.started:
		return handle{}, ErrNotStarted
	}
	s.wg.Add(1)
	return handle{d: s.dht, disc: s.disc, life: s.life}, nil
}

// bound returns a context that ends with ctx or when the service closes.
func bound(ctx, life context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(life, cancel)
	return ctx, func() { stop(); cancel() }
}

// ctxErr explains why an operation bounded by bound ended early: the
// service closing, or the caller's ctx.
func ctxErr(ctx, life context.Context) error {
	if life.Err() != nil {
		return ErrClosed
	}
	return ctx.Err()
}

// Advertise announces this node in the DHT under ns, once, and returns how
// long the announcement should be considered valid (at most 3 h; pass
// discovery.TTL for less). The record always goes into this node's own
// provider store, so peers that ask this node find it even when it knows
// no other DHT server (all its peers are DHT clients). While the routing
// table is empty that is all it can do: it returns ErrNoPeers. It fails
// with ErrNoAddrs when the address filter leaves nothing to announce. Join
// runs Advertise in a loop.
func (s *Service) Advertise(ctx context.Context, ns string, opts ...discovery.Option) (time.Duration, error) {
	if ns == "" {
		return 0, errEmptyNS
	}
	hd, err := s.acquire()
	if err != nil {
		return 0, fmt.Errorf("advertising %q: %w", ns, err)
	}
	defer s.wg.Done()
	if len(hd.d.FilteredAddrs()) == 0 {
		return 0, fmt.Errorf("advertising %q: %w", ns, ErrNoAddrs)
	}
	if hd.d.RoutingTable().Size() == 0 {
		key, err := nsKey(ns)
		if err != nil {
			return 0, fmt.Errorf("advertising %q: %w", ns, err)
		}
		if err := hd.d.Provide(ctx, key, false); err != nil { // local store only
			return 0, fmt.Errorf("advertising %q in this node's own records: %w", ns, err)
		}
		return 0, fmt.Errorf("advertising %q: stored in this node's own records only: %w", ns, ErrNoPeers)
	}
	qctx, cancel := bound(ctx, hd.life)
	defer cancel()
	ttl, err := hd.disc.Advertise(qctx, ns, opts...)
	if err != nil {
		if e := ctxErr(ctx, hd.life); e != nil {
			err = e
		}
		return 0, fmt.Errorf("advertising %q: %w", ns, err)
	}
	return ttl, nil
}

// nsKey is the DHT key of a rendezvous string, as RoutingDiscovery derives
// it (a raw CIDv1 of the string's SHA-256), so records stored here and
// records stored through RoutingDiscovery meet.
func nsKey(ns string) (cid.Cid, error) {
	h, err := mh.Sum([]byte(ns), mh.SHA2_256, -1)
	if err != nil {
		return cid.Undef, err
	}
	return cid.NewCidV1(cid.Raw, h), nil
}

var errEmptyNS = errors.New("empty rendezvous string")

// FindPeers looks up the peers advertising ns. The channel yields each peer
// at most once, never this node, never a peer without an address, and only
// addresses the address filter keeps; it closes when the DHT query ends, ctx
// ends or the service closes. Drain it or cancel ctx. Options: discovery.Limit
// (default 100; 0 for a complete query). While the routing table is empty
// it yields the records this node's own provider store holds (peers that
// advertised to it), and FindAll reports ErrNoPeers.
func (s *Service) FindPeers(ctx context.Context, ns string, opts ...discovery.Option) (<-chan peer.AddrInfo, error) {
	ch, _, err := s.findPeers(ctx, ns, opts...)
	return ch, err
}

// findPeers is FindPeers; localOnly reports that no other node was asked.
func (s *Service) findPeers(ctx context.Context, ns string, opts ...discovery.Option) (_ <-chan peer.AddrInfo, localOnly bool, _ error) {
	if ns == "" {
		return nil, false, errEmptyNS
	}
	hd, err := s.acquire()
	if err != nil {
		return nil, false, fmt.Errorf("finding peers for %q: %w", ns, err)
	}
	qctx, cancel := bound(ctx, hd.life)
	var in <-chan peer.AddrInfo
	if hd.d.RoutingTable().Size() == 0 {
		localOnly = true
		in, err = localRecords(qctx, hd.d, ns)
	} else {
		in, err = hd.disc.FindPeers(qctx, ns, opts...)
	}
	if err != nil {
		cancel()
		s.wg.Done()
		return nil, false, fmt.Errorf("finding peers for %q: %w", ns, err)
	}
	out := make(chan peer.AddrInfo)
	go func() { // owned by the query: ends with it, counted in s.wg
		defer s.wg.Done()
		defer cancel()
		defer close(out)
		seen := make(map[peer.ID]struct{})
		for ai := range in {
			ai, ok := s.usable(ai)
			if !ok {
				continue
			}
			if _, dup := seen[ai.ID]; dup {
				continue
			}
			seen[ai.ID] = struct{}{}
			select {
			case out <- ai:
			case <-qctx.Done():
				return
			}
		}
	}()
	return out, localOnly, nil
}

// localRecords yields the providers of ns in d's own provider store.
func localRecords(ctx context.Context, d *dht.IpfsDHT, ns string) (<-chan peer.AddrInfo, error) {
	key, err := nsKey(ns)
	if err != nil {
		return nil, err
	}
	provs, err := d.ProviderStore().GetProviders(ctx, key.Hash())
	if err != nil {
		return nil, err
	}
	ch := make(chan peer.AddrInfo, len(provs))
	for _, p := range provs {
		ch <- p
	}
	close(ch)
	return ch, nil
}

// usable applies the rules every found peer goes through: not this node, the
// address filter applied, at least one address left.
func (s *Service) usable(ai peer.AddrInfo) (peer.AddrInfo, bool) {
	if ai.ID == "" || ai.ID == s.h.ID() {
		return peer.AddrInfo{}, false
	}
	addrs := ai.Addrs
	if s.cfg.addrFilter != nil && len(addrs) > 0 {
		addrs = s.cfg.addrFilter(slices.Clone(addrs))
	}
	if len(addrs) == 0 {
		return peer.AddrInfo{}, false
	}
	return peer.AddrInfo{ID: ai.ID, Addrs: addrs}, true
}

// FindAll runs one complete DHT query for ns and returns the peers found,
// one entry per peer with its addresses merged, filtered as by FindPeers. The
// slice is empty, not nil, when nobody was found. If ctx ends first it
// returns what it found so far together with the context's error. While
// the routing table is empty it returns the records of this node's own
// provider store with an error wrapping ErrNoPeers.
func (s *Service) FindAll(ctx context.Context, ns string) ([]peer.AddrInfo, error) {
	ch, localOnly, err := s.findPeers(ctx, ns, discovery.Limit(0))
	if err != nil {
		return []peer.AddrInfo{}, err
	}
	found := []peer.AddrInfo{}
	for ai := range ch {
		// FindPeers already yields each peer once.
		found = append(found, peer.AddrInfo{ID: ai.ID, Addrs: dedupAddrs(ai.Addrs)})
	}
	if err := ctx.Err(); err != nil {
		return found, fmt.Errorf("finding peers for %q: %w", ns, err)
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return found, fmt.Errorf("finding peers for %q: %w", ns, ErrClosed)
	}
	if localOnly {
		return found, fmt.Errorf("finding peers for %q: only this node's own records were searched: %w", ns, ErrNoPeers)
	}
	return found, nil
}

func dedupAddrs(addrs []ma.Multiaddr) []ma.Multiaddr {
	seen := make(map[string]struct{}, len(addrs))
	out := make([]ma.Multiaddr, 0, len(addrs))
	for _, a := range addrs {
		k := a.String()
		if _, dup := seen[k]; dup {
			continue
		}
		seen[k] = struct{}{}
		out = append(out, a)
	}
	return out
}

// FindPeer looks up the addresses of peer id in the DHT (or returns those
// of a peer already connected). The address filter is applied; a peer with
// no address left is reported as not found (routing.ErrNotFound).
func (s *Service) FindPeer(ctx context.Context, id peer.ID) (peer.AddrInfo, error) {
	if id == s.h.ID() {
		return peer.AddrInfo{}, fmt.Errorf("finding peer %s: that is this node", id)
	}
	hd, err := s.acquire()
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("finding peer %s: %w", id, err)
	}
	defer s.wg.Done()
	qctx, cancel := bound(ctx, hd.life)
	defer cancel()
	ai, err := hd.d.FindPeer(qctx, id)
	if err != nil {
		if e := ctxErr(ctx, hd.life); e != nil {
			err = e
		}
		return peer.AddrInfo{}, fmt.Errorf("finding peer %s: %w", id, err)
	}
	ai, ok := s.usable(ai)
	if !ok {
		return peer.AddrInfo{}, fmt.Errorf("finding peer %s: no address left after the address filter: %w", id, routing.ErrNotFound)
	}
	return ai, nil
}

// RoutingTableSize returns the number of peers in the DHT routing table: 0
// before Start, with the DHT off, or before bootstrap succeeded.
func (s *Service) RoutingTableSize() int {
	s.mu.Lock()
	d := s.dht
	s.mu.Unlock()
	if d == nil {
		return 0
	}
	return d.RoutingTable().Size()
}

// Joined returns the rendezvous strings currently joined, sorted.
func (s *Service) Joined() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.joins))
	for ns := range s.joins {
		out = append(out, ns)
	}
	sort.Strings(out)
	return out
}
