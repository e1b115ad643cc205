// Package streams provides the registry of live bridged streams of p2pd and
// the byte bridge between a libp2p stream and a local connection (TCP or any
// net.Conn).
//
// A bridge copies both directions independently and supports real
// half-close: the end of the local data half-closes the stream, the end of
// the stream data half-closes the local connection, and the other direction
// keeps flowing until it ends too. Any error, or Registry.Reset, resets the
// stream and closes the local connection with SO_LINGER 0 so the local
// application sees a connection reset. Each bridge is torn down exactly once.
//
// The registry's own bridge is the plain one (plain.go): a goroutine and a
// copy buffer per direction for the bridge's whole life, obviously correct
// and the reference for that behaviour. WithEngine hands the copying to a
// faster engine instead (package fastpath: raw reads, small first reads,
// idle connections parked in an epoll poller), behind the small Engine
// interface; when the engine fails, the registry logs it, counts it in its
// metrics and goes back to the plain bridge for every later stream.
//
// The package does not open streams, dial or accept connections, or apply
// any policy about who may connect: that is the job of package listeners.
package streams

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"syscall"
	"time"

	logging "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/p2pd/p2pd/internal/ends"
)

var log = logging.Logger("p2pd/streams")

// Info describes one bridged stream. Values are copies; the counters are a
// snapshot taken when the Info was made.
type Info struct {
	ID       uint64       // from 0, increasing, never reused within a Registry
	Protocol protocol.ID  // the stream's protocol
	Peer     peer.ID      // the remote peer of the stream
	Origin   ma.Multiaddr // who started it: forward: the local client's address; listen: /p2p/<remote peer>
	Target   ma.Multiaddr // forward: /p2p/<peer>; listen: the local service's address
	BytesIn  uint64       // bytes that came from the peer (stream -> local connection)
	BytesOut uint64       // bytes sent to the peer (local connection -> stream)
	Started  time.Time    // when Bridge registered the stream
	// Datagrams, set only for a local connection that carries datagrams (a
	// UDP flow, see DatagramConn), counts them.
	Datagrams *DatagramCounts
}

// Registry keeps the live bridged streams and owns their copy goroutines.
// Its methods are safe for concurrent use.
type Registry struct {
	cfg config

	mu           sync.Mutex // guards nextID, bridges, closed, engineFailed
	nextID       uint64
	bridges      map[uint64]*entry
	closed       bool
	engineFailed bool // the engine failed: bridge with the plain bridge

	failures prometheus.Counter // engine failures

	// protMu guards protected, and is held across the matching Protect or
	// Unprotect call so that those calls reach the conn manager in the order
	// of the count changes.
	protMu    sync.Mutex
	protected map[peer.ID]int // open streams per peer, only with a conn manager

	// wg counts each bridge until it is finished and each goroutine of a
	// plain bridge.
	wg sync.WaitGroup
}

// entry is one bridged stream of the registry.
type entry struct {
	info Info // static fields only; the counters live in the pump
	pump Pump
	c    net.Conn // the local connection, for datagram counters
	// done is closed once the bridge is finished. It is made only for a
	// caller that waits for that (Reset), while the entry is in the
	// registry: most bridges end without one. Guarded by Registry.mu.
	done chan struct{}
}

// doneLocked returns a channel closed once e is finished. e must be in
// r.bridges, and r.mu held.
func (e *entry) doneLocked() <-chan struct{} {
	if e.done == nil {
		e.done = make(chan struct{})
	}
	return e.done
}

// snapshot returns the Info with the counters read now.
func (e *entry) snapshot() Info {
	info := e.info
	info.BytesIn, info.BytesOut = e.pump.Bytes()
	fillDatagrams(&info, e.c)
	return info
}

// New returns an empty Registry, or the error of the first invalid option.
// It starts nothing.
func New(opts ...Option) (*Registry, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, fmt.Errorf("invalid stream registry option: %w", err)
		}
	}
	r := &Registry{
		cfg:       cfg,
		bridges:   make(map[uint64]*entry),
		protected: make(map[peer.ID]int),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "p2pd_streams_engine_failures_total",
			Help: "Failures of the fast bridge engine, after which streams are bridged with the plain bridge.",
		}),
	}
	if cfg.registerer != nil {
		if err := cfg.registerer.Register(r.failures); err != nil {
			return nil, fmt.Errorf("registering stream registry metrics: %w", err)
		}
	}
	return r, nil
}

// NewRegistry is like New but panics if an option is invalid, which is a
// programming error.
func NewRegistry(opts ...Option) *Registry {
	r, err := New(opts...)
	if err != nil {
		panic(err)
	}
	return r
}

// Bridge registers s and c as a new stream and starts copying between them in
// goroutines owned by the registry; it returns at once with the stream's Info.
// From then on the registry owns s and c and closes or resets them. origin and
// target are only recorded (see Info).
//
// After Close, Bridge resets s, closes c and returns ErrClosed, so the caller
// never has to clean up.
func (r *Registry) Bridge(s network.Stream, c net.Conn, origin, target ma.Multiaddr) (Info, error) {
	if s == nil || c == nil {
		if s != nil {
			_ = s.Reset()
		}
		if c != nil {
			ends.Abort(c)
		}
		return Info{}, errors.New("bridging a stream: stream and connection must both be set")
	}
	info := Info{
		Protocol: s.Protocol(),
		Peer:     s.Conn().RemotePeer(),
		Origin:   origin,
		Target:   target,
		Started:  time.Now(),
	}

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		_ = s.Reset()
		ends.Abort(c)
		return Info{}, ErrClosed
	}
	info.ID = r.nextID
	r.nextID++
	e := &entry{info: info, c: c}
	e.pump = r.newPumpLocked(s, c, func(err error) { r.finish(e, err) })
	r.bridges[info.ID] = e
	r.wg.Add(1) // until finish
	r.mu.Unlock()

	r.protect(info.Peer)
	log.Debugw("stream opened", "stream_id", info.ID, "peer", info.Peer, "protocol", info.Protocol,
		"origin", info.Origin, "target", info.Target)
	if r.cfg.onOpen != nil {
		r.cfg.onOpen(info)
	}
	e.pump.Start()
	return info, nil
}

// newPumpLocked prepares the bridge of s and c: the engine's while it
// works, else the plain bridge. r.mu must be held.
func (r *Registry) newPumpLocked(s network.Stream, c net.Conn, done func(error)) Pump {
	if r.cfg.engine != nil && !r.engineFailed {
		p, err := r.cfg.engine.NewPump(s, c, done)
		if err == nil {
			return p
		}
		r.engineFailed = true
		r.failures.Inc()
		log.Errorw("the fast bridge failed: bridging every new stream with the plain bridge from now on (streams already open go on)",
			"err", err)
	}
	return newPlainBridge(s, c, r.spawn, done)
}

// spawn runs f in a goroutine counted in r.wg. The caller must ensure the
// count cannot be zero (it holds r.mu with the registry open, or runs for a
// bridge that is not finished).
func (r *Registry) spawn(f func()) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		f()
	}()
}

// List returns the open streams sorted by ID.
func (r *Registry) List() []Info {
	r.mu.Lock()
	out := make([]Info, 0, len(r.bridges))
	for _, e := range r.bridges {
		out = append(out, e.snapshot())
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b Info) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

// Len returns the number of open streams.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.bridges)
}

// Get returns the stream with this ID, if it is still open.
func (r *Registry) Get(id uint64) (Info, bool) {
	r.mu.Lock()
	e, ok := r.bridges[id]
	r.mu.Unlock()
	if !ok {
		return Info{}, false
	}
	return e.snapshot(), true
}

// Reset resets the stream with this ID: the peer sees a stream reset and the
// local application a connection reset. It returns once the stream has been
// removed and its OnClose hook has run. An unknown or already finished ID
// gives an error wrapping ErrNotFound.
func (r *Registry) Reset(id uint64) error {
	r.mu.Lock()
	e, ok := r.bridges[id]
	var done <-chan struct{}
	if ok {
		done = e.doneLocked()
	}
	r.mu.Unlock()
	if !ok {
		return fmt.Errorf("resetting stream %d: %w", id, ErrNotFound)
	}
	e.pump.Reset(ErrResetRequested)
	<-done
	return nil
}

// ResetAll resets every open stream as Reset does and returns how many it
// reset.
func (r *Registry) ResetAll() int {
	return r.resetAll(ErrResetRequested)
}

func (r *Registry) resetAll(reason error) int {
	r.mu.Lock()
	es := make([]*entry, 0, len(r.bridges))
	dones := make([]<-chan struct{}, 0, len(r.bridges))
	for _, e := range r.bridges {
		es = append(es, e)
		dones = append(dones, e.doneLocked())
	}
	r.mu.Unlock()
	for _, e := range es {
		e.pump.Reset(reason)
	}
	for _, done := range dones {
		<-done
	}
	return len(es)
}

// Close refuses new streams, resets every open one (their OnClose reason is
// ErrClosed) and waits until all bridge goroutines have returned. It is safe
// to call more than once; it always returns nil.
func (r *Registry) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.resetAll(ErrClosed)
	r.wg.Wait()
	if r.cfg.engine != nil {
		// Every bridge has finished: nothing uses the engine any more.
		if err := r.cfg.engine.Close(); err != nil {
			log.Debugw("closing the bridge engine", "err", err)
		}
	}
	return nil
}

// finish is called once per bridge, when both its directions are over.
func (r *Registry) finish(e *entry, err error) {
	r.mu.Lock()
	delete(r.bridges, e.info.ID)
	done := e.done // no waiter can ask for it any more
	r.mu.Unlock()
	r.unprotect(e.info.Peer)

	info := e.snapshot()
	switch {
	case err == nil:
		log.Debugw("stream closed", "stream_id", info.ID, "peer", info.Peer, "protocol", info.Protocol,
			"bytes_in", info.BytesIn, "bytes_out", info.BytesOut)
	case normalReset(err):
		log.Debugw("stream reset", "stream_id", info.ID, "peer", info.Peer, "protocol", info.Protocol,
			"bytes_in", info.BytesIn, "bytes_out", info.BytesOut, "err", err)
	default:
		log.Warnw("stream reset", "stream_id", info.ID, "peer", info.Peer, "protocol", info.Protocol,
			"bytes_in", info.BytesIn, "bytes_out", info.BytesOut, "err", err)
	}
	if r.cfg.onClose != nil {
		r.cfg.onClose(info, err)
	}
	if done != nil {
		close(done)
	}
	r.wg.Done()
}

// normalReset tells whether err is an ordinary way for a tunnel to end
// (asked for, or reset by one of the two ends) rather than a fault.
func normalReset(err error) bool {
	return errors.Is(err, ErrResetRequested) ||
		errors.Is(err, ErrClosed) ||
		errors.Is(err, network.ErrReset) ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE)
}

func (r *Registry) protect(p peer.ID) {
	if r.cfg.cm == nil {
		return
	}
	r.protMu.Lock()
	defer r.protMu.Unlock()
	r.protected[p]++
	if r.protected[p] == 1 {
		r.cfg.cm.Protect(p, r.cfg.protectTag)
	}
}

func (r *Registry) unprotect(p peer.ID) {
	if r.cfg.cm == nil {
		return
	}
	r.protMu.Lock()
	defer r.protMu.Unlock()
	r.protected[p]--
	if r.protected[p] > 0 {
		return
	}
	delete(r.protected, p)
	r.cfg.cm.Unprotect(p, r.cfg.protectTag)
}
