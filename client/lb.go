package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/p2pd/p2pd/api"
)

// LBStrategy picks the daemon each call of a load-balancing client goes to
// first.
type LBStrategy int

const (
	// Failover sends every call to one daemon, starting with the first in
	// the list, and sticks to it while it answers. When it cannot be
	// reached the call moves on to the next daemon in the list (wrapping
	// around), which becomes the one to stick to once it answers. It does
	// not move back when an earlier daemon returns.
	Failover LBStrategy = iota
	// RoundRobin starts each call at the next daemon in the list, so calls
	// spread evenly; a call that cannot reach its daemon moves on to the
	// following ones.
	RoundRobin
)

// String names the strategy.
func (s LBStrategy) String() string {
	switch s {
	case Failover:
		return "failover"
	case RoundRobin:
		return "round-robin"
	}
	return fmt.Sprintf("LBStrategy(%d)", int(s))
}

// Back-off of a daemon that could not be reached: calls try it only after
// the daemons not backing off, for lbBackoffMin after its first failure,
// doubling with each further one up to lbBackoffMax. An answer (even an
// error answer) ends the back-off.
const (
	lbBackoffMin = 500 * time.Millisecond
	lbBackoffMax = 30 * time.Second
)

// lbClient is a Client over several daemons.
type lbClient struct {
	strategy LBStrategy
	retries  int
	backends []*defaultClient
	rr       atomic.Uint64 // the round-robin position

	backoffMin, backoffMax time.Duration // lbBackoffMin and lbBackoffMax; tests change them

	mu      sync.Mutex  // guards current, fails and until
	current int         // the daemon Failover sticks to
	fails   []int       // consecutive failures per daemon
	until   []time.Time // per daemon: back off until then
}

var _ Client = (*lbClient)(nil)

// NewLBClient returns a Client that spreads calls over the daemons cfgs
// describe (each as NewDefaultClient would read it) with strategy.
//
// What is retried: a call that could not reach its daemon (the error matches
// ErrUnreachable: no REPO/api file, connection refused or timed out, or the
// connection broke) is sent to the next daemon. Calls that change a
// daemon's state (Listen, Forward, their Foreground forms, Close,
// CloseStreams) are retried only if the request never left the client
// (UnreachableError.Sent is false), so a daemon that died after receiving
// one is not joined by a second daemon doing the same; the reading calls
// (ID, Peers, Find, Listeners, Streams, Events) and Connect are retried in
// both cases. Never retried: any answer of a daemon, be it a 4xx refusal or
// a 5xx failure (it is returned as is), and the end of the caller's context
// or of Config.Timeout (the daemon may still be working on it).
//
// retries counts the attempts after the first: a call makes at most
// retries+1 attempts, each at the next daemon in the strategy's order,
// starting again at the top of that order when retries >= len(cfgs), with no
// pause. retries = len(cfgs)-1 tries every daemon once. When every attempt
// fails the error matches ErrUnreachable and says how many were made.
// Daemons that failed recently are tried last (see the back-off above).
//
// Streams and tunnels: Events, ListenForeground and ForwardForeground are
// retried like any call while they are being opened. Once open they stay
// with their daemon: when it stops or dies, EventStream.Next returns an
// error matching ErrUnreachable (Tunnel.Err likewise) and that daemon is
// marked as failed, so calling Events again subscribes to the next daemon.
// That new stream numbers events from that daemon's own sequence; events
// published while no stream was open are not replayed.
func NewLBClient(strategy LBStrategy, cfgs []*Config, retries int) (Client, error) {
	if strategy != Failover && strategy != RoundRobin {
		return nil, fmt.Errorf("unknown load-balancing strategy %s", strategy)
	}
	if len(cfgs) == 0 {
		return nil, errors.New("load-balancing client needs at least one daemon config")
	}
	if retries < 0 {
		return nil, fmt.Errorf("retries must not be negative, got %d", retries)
	}
	lb := &lbClient{
		strategy: strategy,
		retries:  retries,
		fails:    make([]int, len(cfgs)),
		until:    make([]time.Time, len(cfgs)),

		backoffMin: lbBackoffMin,
		backoffMax: lbBackoffMax,
	}
	for i, cfg := range cfgs {
		if cfg == nil {
			return nil, fmt.Errorf("daemon config %d is nil", i)
		}
		c, err := newDefaultClient(cfg)
		if err != nil {
			return nil, fmt.Errorf("daemon config %d: %w", i, err)
		}
		lb.backends = append(lb.backends, c)
	}
	return lb, nil
}

// order returns the daemons one call tries, in order: the strategy's
// rotation, with daemons that are backing off moved to the end.
func (lb *lbClient) order() []int {
	n := len(lb.backends)
	lb.mu.Lock()
	defer lb.mu.Unlock()
	start := lb.current
	if lb.strategy == RoundRobin {
		start = int((lb.rr.Add(1) - 1) % uint64(n))
	}
	now := time.Now()
	out := make([]int, 0, n)
	var later []int
	for k := 0; k < n; k++ {
		i := (start + k) % n
		if now.Before(lb.until[i]) {
			later = append(later, i)
			continue
		}
		out = append(out, i)
	}
	return append(out, later...)
}

// answered records that daemon i answered.
func (lb *lbClient) answered(i int) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	lb.fails[i] = 0
	lb.until[i] = time.Time{}
	if lb.strategy == Failover {
		lb.current = i
	}
}

// failed records that daemon i could not be reached.
func (lb *lbClient) failed(i int) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	lb.fails[i]++
	backoff := lb.backoffMax
	if shift := lb.fails[i] - 1; shift < 16 {
		backoff = min(lb.backoffMin<<shift, lb.backoffMax)
	}
	lb.until[i] = time.Now().Add(backoff)
	log.Debugw("daemon unreachable; backing off", "addr", lb.backends[i].describe(),
		"failures", lb.fails[i], "backoff", backoff)
}

// retryable says whether err from a call may be sent to another daemon;
// mutating calls only when the request never left the client.
func retryable(err error, mutating bool) bool {
	var ue *UnreachableError
	if !errors.As(err, &ue) {
		return false
	}
	return !mutating || !ue.Sent
}

// lbCall runs call on daemon after daemon until one answers, following the
// rules documented at NewLBClient.
func lbCall[T any](ctx context.Context, lb *lbClient, mutating bool, call func(i int, c *defaultClient) (T, error)) (T, error) {
	var zero T
	order := lb.order()
	var last error
	attempts := 0
	for attempts <= lb.retries {
		i := order[attempts%len(order)]
		attempts++
		v, err := call(i, lb.backends[i])
		if err == nil {
			lb.answered(i)
			return v, nil
		}
		var answer *Error
		if errors.As(err, &answer) {
			lb.answered(i) // it is alive; it just said no
			return zero, err
		}
		if ctx.Err() != nil || !retryable(err, mutating) {
			return zero, err
		}
		lb.failed(i)
		last = err
		log.Debugw("daemon unreachable; trying the next one", "addr", lb.backends[i].describe(), "err", err)
	}
	if attempts == 1 {
		return zero, last
	}
	return zero, fmt.Errorf("no daemon answered in %d attempts; the last one: %w", attempts, last)
}

func (lb *lbClient) ID(ctx context.Context) (*api.ID, error) {
	return lbCall(ctx, lb, false, func(_ int, c *defaultClient) (*api.ID, error) { return c.ID(ctx) })
}

func (lb *lbClient) Peers(ctx context.Context) ([]api.Peer, error) {
	return lbCall(ctx, lb, false, func(_ int, c *defaultClient) ([]api.Peer, error) { return c.Peers(ctx) })
}

func (lb *lbClient) Connect(ctx context.Context, addr string) (*api.ConnectResponse, error) {
	return lbCall(ctx, lb, false, func(_ int, c *defaultClient) (*api.ConnectResponse, error) {
		return c.Connect(ctx, addr)
	})
}

func (lb *lbClient) Find(ctx context.Context, rendezvous string, timeout time.Duration) ([]api.FoundPeer, error) {
	return lbCall(ctx, lb, false, func(_ int, c *defaultClient) ([]api.FoundPeer, error) {
		return c.Find(ctx, rendezvous, timeout)
	})
}

func (lb *lbClient) Listen(ctx context.Context, req api.ListenRequest) (*api.Listener, error) {
	return lbCall(ctx, lb, true, func(_ int, c *defaultClient) (*api.Listener, error) { return c.Listen(ctx, req) })
}

func (lb *lbClient) Forward(ctx context.Context, req api.ForwardRequest) (*api.Listener, error) {
	return lbCall(ctx, lb, true, func(_ int, c *defaultClient) (*api.Listener, error) { return c.Forward(ctx, req) })
}

func (lb *lbClient) ListenForeground(ctx context.Context, req api.ListenRequest) (*Tunnel, error) {
	req.Foreground = true
	return lbCall(ctx, lb, true, func(i int, c *defaultClient) (*Tunnel, error) {
		return c.foreground(ctx, api.RouteListen, req, func() { lb.failed(i) })
	})
}

func (lb *lbClient) ForwardForeground(ctx context.Context, req api.ForwardRequest) (*Tunnel, error) {
	req.Foreground = true
	return lbCall(ctx, lb, true, func(i int, c *defaultClient) (*Tunnel, error) {
		return c.foreground(ctx, api.RouteForward, req, func() { lb.failed(i) })
	})
}

func (lb *lbClient) Listeners(ctx context.Context) ([]api.Listener, error) {
	return lbCall(ctx, lb, false, func(_ int, c *defaultClient) ([]api.Listener, error) { return c.Listeners(ctx) })
}

func (lb *lbClient) RetryListeners(ctx context.Context) ([]api.Listener, error) {
	return lbCall(ctx, lb, true, func(_ int, c *defaultClient) ([]api.Listener, error) { return c.RetryListeners(ctx) })
}

func (lb *lbClient) Close(ctx context.Context, req api.CloseRequest) (int, error) {
	return lbCall(ctx, lb, true, func(_ int, c *defaultClient) (int, error) { return c.Close(ctx, req) })
}

func (lb *lbClient) Streams(ctx context.Context) ([]api.Stream, error) {
	return lbCall(ctx, lb, false, func(_ int, c *defaultClient) ([]api.Stream, error) { return c.Streams(ctx) })
}

func (lb *lbClient) CloseStreams(ctx context.Context, req api.StreamCloseRequest) (int, error) {
	return lbCall(ctx, lb, true, func(_ int, c *defaultClient) (int, error) { return c.CloseStreams(ctx, req) })
}

func (lb *lbClient) Events(ctx context.Context) (*EventStream, error) {
	return lbCall(ctx, lb, false, func(i int, c *defaultClient) (*EventStream, error) {
		return c.events(ctx, func() { lb.failed(i) })
	})
}

func (lb *lbClient) CloseIdleConnections() {
	for _, c := range lb.backends {
		c.CloseIdleConnections()
	}
}
