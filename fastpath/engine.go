// Package fastpath is the fast byte bridge of p2pd's stream registry: an
// Engine for streams.WithEngine. It moves the same bytes with the same
// half-close and reset behaviour as the registry's plain bridge (the
// reference, and what the shared test suite checks both against), with
// less CPU and memory:
//
//   - local TCP and Unix connections are read through their file
//     descriptor (raw reads), taking a pooled buffer only while data is
//     waiting, so an idle direction holds no copy buffer;
//   - every other reader (the stream, other connections) is read into a
//     small buffer inside the bridge first and into a pooled one only when
//     that filled up (small-first reads);
//   - on Linux a local connection that has been silent for the park delay
//     gives back its goroutine and waits in one epoll poller per engine
//     (parking), so an idle bridge costs one parked goroutine;
//   - a bridge of a stream it opened reads the local connection's first
//     bytes before it starts reading the stream, so that a lazily
//     negotiated stream sends them with its protocol proposal.
//
// If the poller cannot start or dies, the engine logs it as an error, wakes
// every parked connection (each waits in a goroutine of its own from then
// on) and refuses new pumps, which makes the registry bridge every later
// stream with its plain bridge and count the failure in its metrics.
package fastpath

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	logging "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/core/network"

	"github.com/p2pd/p2pd/streams"
)

var log = logging.Logger("p2pd/fastpath")

// Engine bridges streams for a streams.Registry (streams.WithEngine). Its
// methods are safe for concurrent use.
type Engine struct {
	cfg  config
	pool *bufPool

	mu        sync.Mutex // guards nextID, poll, pollTried, failed
	nextID    uint64
	poll      *poller // made by the first pump that can use it
	pollTried bool
	failed    error       // why the engine refuses new pumps; nil while it works
	dead      atomic.Bool // failed is set; read without e.mu by parking bridges

	wg sync.WaitGroup // every goroutine of every bridge, and the poller's
}

var _ streams.Engine = (*Engine)(nil)

// New returns an engine, or the error of the first invalid option. It
// starts nothing: the poller starts with the first pump that needs it.
func New(opts ...Option) (*Engine, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, fmt.Errorf("invalid fast bridge option: %w", err)
		}
	}
	return &Engine{cfg: cfg, pool: newBufPool(cfg.bufSize)}, nil
}

// NewPump prepares the bridge of s and c. It fails once the engine has
// failed (its poller could not start or died).
func (e *Engine) NewPump(s network.Stream, c net.Conn, done func(error)) (streams.Pump, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.failed != nil {
		return nil, e.failed
	}
	b := newBridge(e, e.nextID, s, c, done)
	e.nextID++
	if b.raw != nil && e.cfg.localMode == localPoll {
		b.poll = e.pollerLocked()
		if e.failed != nil {
			return nil, e.failed
		}
	}
	return b, nil
}

// pollerLocked returns the poller, starting it on first use, or nil where
// there is none. e.mu must be held.
func (e *Engine) pollerLocked() *poller {
	if e.pollTried {
		return e.poll
	}
	e.pollTried = true
	p, err := newPoller()
	switch {
	case errors.Is(err, errNoPoller):
		log.Debugw("idle local connections will each keep a goroutine", "err", err)
		return nil
	case err != nil:
		e.failLocked(fmt.Errorf("starting the poller of idle connections: %w", err))
		return nil
	}
	e.poll = p
	e.spawn(func() {
		if err := p.run(); err != nil {
			e.pollerDied(p, err)
		}
	})
	return p
}

// failLocked records why the engine fails from now on. e.mu must be held.
func (e *Engine) failLocked(err error) {
	if e.failed != nil {
		return
	}
	e.failed = fmt.Errorf("fast bridge failed: %w", err)
	e.dead.Store(true)
	log.Errorw("the fast bridge failed: new streams will use the plain bridge", "err", err)
}

// pollerDied fails the engine and wakes every connection parked in p: each
// one then waits in a goroutine of its own, as park refuses to park again.
func (e *Engine) pollerDied(p *poller, err error) {
	e.mu.Lock()
	e.failLocked(fmt.Errorf("the poller of idle connections died: %w", err))
	e.mu.Unlock()
	for _, b := range p.takeWaiters() {
		b.wakeLocal()
	}
}

// working tells whether the engine has not failed.
func (e *Engine) working() bool { return !e.dead.Load() }

// spawn runs f in a goroutine counted in e.wg. The caller must ensure the
// count cannot be zero: it holds e.mu, or runs for a bridge that is not
// finished.
func (e *Engine) spawn(f func()) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		f()
	}()
}

// Close stops the poller and waits for the engine's goroutines. The
// registry calls it once every bridge has finished.
func (e *Engine) Close() error {
	e.mu.Lock()
	p := e.poll
	e.mu.Unlock()
	if p != nil {
		p.close()
	}
	e.wg.Wait()
	return nil
}
