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
// Bridges are built to be cheap when idle: no copy buffer is held by a
// direction that waits for data, and on Linux a TCP or Unix connection that
// has been silent for the park delay (WithParkDelay) is watched by one
// epoll-based poller per registry instead of a goroutine of its own, so an
// idle bridge costs one parked goroutine (4 KiB of stack) and about 2 KiB of
// heap (BenchmarkIdleBridge). A connection that keeps talking keeps its
// goroutine, and the lower latency of waiting in it; a new bridge starts
// with that goroutine too (most connections talk at once), and on a stream
// it opened reads the local connection's first bytes before starting the
// stream side, so that a lazily negotiated stream sends them together with
// its protocol proposal.
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
	"time"

	logging "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
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
	cfg  config
	pool *bufPool

	mu         sync.Mutex // guards nextID, bridges, closed, poll, pollFailed
	nextID     uint64
	bridges    map[uint64]*bridge
	closed     bool
	poll       *poller // made by the first Bridge that can use it
	pollFailed bool    // the poller could not be made; do without

	// protMu guards protected, and is held across the matching Protect or
	// Unprotect call so that those calls reach the conn manager in the order
	// of the count changes.
	protMu    sync.Mutex
	protected map[peer.ID]int // open streams per peer, only with a conn manager

	// wg counts each bridge until it is finished, each goroutine of a
	// bridge, and the poller's goroutine.
	wg sync.WaitGroup
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
	return &Registry{
		cfg:       cfg,
		pool:      newBufPool(cfg.bufSize),
		bridges:   make(map[uint64]*bridge),
		protected: make(map[peer.ID]int),
	}, nil
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
			abortConn(c)
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
		abortConn(c)
		return Info{}, ErrClosed
	}
	info.ID = r.nextID
	r.nextID++
	b := newBridge(r, info, s, c)
	r.bridges[info.ID] = b
	r.wg.Add(1) // until finish
	var p *poller
	if b.raw != nil && r.cfg.localMode == localPoll {
		p = r.pollerLocked()
	}
	r.mu.Unlock()

	r.protect(info.Peer)
	log.Debugw("stream opened", "stream_id", info.ID, "peer", info.Peer, "protocol", info.Protocol,
		"origin", info.Origin, "target", info.Target)
	if r.cfg.onOpen != nil {
		r.cfg.onOpen(info)
	}
	b.run(p)
	return info, nil
}

// pollerLocked returns the registry poller, starting it on first use, or nil
// if there is none. r.mu must be held (it is not closed).
func (r *Registry) pollerLocked() *poller {
	if r.poll != nil || r.pollFailed {
		return r.poll
	}
	p, err := newPoller()
	if err != nil {
		r.pollFailed = true
		log.Debugw("idle local connections will each keep a goroutine", "err", err)
		return nil
	}
	r.poll = p
	r.spawn(p.run)
	return p
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
	for _, b := range r.bridges {
		out = append(out, b.snapshot())
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
	b, ok := r.bridges[id]
	r.mu.Unlock()
	if !ok {
		return Info{}, false
	}
	return b.snapshot(), true
}

// Reset resets the stream with this ID: the peer sees a stream reset and the
// local application a connection reset. It returns once the stream has been
// removed and its OnClose hook has run. An unknown or already finished ID
// gives an error wrapping ErrNotFound.
func (r *Registry) Reset(id uint64) error {
	r.mu.Lock()
	b, ok := r.bridges[id]
	r.mu.Unlock()
	if !ok {
		return fmt.Errorf("resetting stream %d: %w", id, ErrNotFound)
	}
	b.reset(ErrResetRequested)
	<-b.done
	return nil
}

// ResetAll resets every open stream as Reset does and returns how many it
// reset.
func (r *Registry) ResetAll() int {
	return r.resetAll(ErrResetRequested)
}

func (r *Registry) resetAll(reason error) int {
	r.mu.Lock()
	bs := make([]*bridge, 0, len(r.bridges))
	for _, b := range r.bridges {
		bs = append(bs, b)
	}
	r.mu.Unlock()
	for _, b := range bs {
		b.reset(reason)
	}
	for _, b := range bs {
		<-b.done
	}
	return len(bs)
}

// Close refuses new streams, resets every open one (their OnClose reason is
// ErrClosed) and waits until all bridge goroutines have returned. It is safe
// to call more than once; it always returns nil.
func (r *Registry) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.resetAll(ErrClosed)
	r.mu.Lock()
	p := r.poll
	r.mu.Unlock()
	if p != nil {
		p.close() // every bridge has finished: nothing uses it any more
	}
	r.wg.Wait()
	return nil
}

// finish is called once per bridge, by its last copy loop.
func (r *Registry) finish(b *bridge) {
	r.mu.Lock()
	delete(r.bridges, b.info.ID)
	r.mu.Unlock()
	r.unprotect(b.info.Peer)

	info := b.snapshot()
	err := b.endErr()
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
	close(b.done)
	r.wg.Done()
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
