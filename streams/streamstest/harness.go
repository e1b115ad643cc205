// Package streamstest is the stream-behaviour test suite of p2pd's byte
// bridges and the harness it runs on: a tunnel of two libp2p hosts on
// loopback, each with a stream registry, between a client and a TCP
// service. Run checks a registry configuration (the plain bridge, or an
// engine such as package fastpath's) for half-close, resets both ways,
// byte-exactness (SHA-256 of what left and what arrived), slow readers and
// 10,000 idle streams.
package streamstest

import (
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	yamux "github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/p2pd/p2pd/internal/ends"
	"github.com/p2pd/p2pd/streams"
)

// Proto is the protocol of the tunnel's streams.
const Proto = protocol.ID("/x/streams-test")

// NewHost builds a libp2p host on loopback TCP with TLS and yamux, no relay,
// no metrics and no resource limits (the tests open thousands of streams).
func NewHost(tb testing.TB) host.Host {
	tb.Helper()
	h, err := newHost()
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

// newHost is NewHost for a process without a testing.TB (the peer process).
func newHost() (host.Host, error) {
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(rcmgr.InfiniteLimits))
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	// Generous handshake timeouts: the machine running the tests may be
	// heavily loaded, and a slow handshake is not what these tests check.
	h, err := libp2p.New(
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.Transport(tcp.NewTCPTransport, tcp.WithConnectionTimeout(time.Minute)),
		libp2p.SwarmOpts(swarm.WithDialTimeoutLocal(time.Minute)),
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ResourceManager(rm),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
	)
	if err != nil {
		return nil, fmt.Errorf("libp2p.New: %w", err)
	}
	return h, nil
}

// ConnectHosts connects a to b.
func ConnectHosts(tb testing.TB, a, b host.Host) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		tb.Fatalf("connect: %v", err)
	}
}

// P2PAddr returns /p2p/ID.
func P2PAddr(tb testing.TB, id peer.ID) ma.Multiaddr {
	tb.Helper()
	a, err := ma.NewMultiaddr("/p2p/" + id.String())
	if err != nil {
		tb.Fatalf("p2p multiaddr: %v", err)
	}
	return a
}

// NetAddr returns a as a multiaddr.
func NetAddr(tb testing.TB, a net.Addr) ma.Multiaddr {
	tb.Helper()
	m, err := manet.FromNetAddr(a)
	if err != nil {
		tb.Fatalf("multiaddr of %v: %v", a, err)
	}
	return m
}

// HookLog records the calls of the OnOpen and OnClose hooks.
type HookLog struct {
	mu     sync.Mutex // guards opened, closed, read
	opened []streams.Info
	closed []CloseEvent
	read   int           // close events Next has returned
	more   chan struct{} // signalled after each close event
}

// CloseEvent is one call of the OnClose hook.
type CloseEvent struct {
	Info streams.Info
	Err  error
}

// NewHookLog returns an empty log.
func NewHookLog() *HookLog { return &HookLog{more: make(chan struct{}, 1)} }

func (h *HookLog) options() []streams.Option {
	return []streams.Option{
		streams.WithOnOpen(func(i streams.Info) {
			h.mu.Lock()
			h.opened = append(h.opened, i)
			h.mu.Unlock()
		}),
		streams.WithOnClose(func(i streams.Info, err error) {
			h.mu.Lock()
			h.closed = append(h.closed, CloseEvent{i, err})
			h.mu.Unlock()
			select {
			case h.more <- struct{}{}:
			default:
			}
		}),
	}
}

// Snapshot returns the Infos of the OnOpen calls and the OnClose events so far.
func (h *HookLog) Snapshot() ([]streams.Info, []CloseEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]streams.Info(nil), h.opened...), append([]CloseEvent(nil), h.closed...)
}

// Next waits for the next close event not returned yet.
func (h *HookLog) Next(tb testing.TB) CloseEvent {
	tb.Helper()
	deadline := time.After(20 * time.Second)
	for {
		h.mu.Lock()
		if h.read < len(h.closed) {
			ev := h.closed[h.read]
			h.read++
			h.mu.Unlock()
			return ev
		}
		h.mu.Unlock()
		select {
		case <-h.more:
		case <-deadline:
			tb.Fatal("no OnClose call within 20s")
			return CloseEvent{}
		}
	}
}

// Tunnel is a mini forward built for the tests: a client dials lnA; each
// accepted conn is bridged by RegA to a stream to B; B's handler dials the
// service and bridges the stream to it with RegB.
type Tunnel struct {
	A, B       host.Host
	RegA, RegB *streams.Registry
	HooksA     *HookLog
	HooksB     *HookLog
	Addr       string // where clients dial
	SvcAddr    ma.Multiaddr
	lnA, lnSvc net.Listener
	wg         sync.WaitGroup // accept loops, forward goroutines, service handlers
	closeOnce  sync.Once
}

// Config configures a Tunnel.
type Config struct {
	// Opts gives the options of each registry (called once for each:
	// an engine serves one registry), or nil.
	Opts         func() []streams.Option
	OptsA, OptsB []streams.Option // more options for one side
	Protect      bool             // give each registry its host's conn manager
}

// NewTunnel starts the Tunnel with service run for each service connection.
// service must return once its connection fails.
func NewTunnel(tb testing.TB, service func(net.Conn), cfg Config) *Tunnel {
	tb.Helper()
	t := &Tunnel{HooksA: NewHookLog(), HooksB: NewHookLog()}
	t.A, t.B = NewHost(tb), NewHost(tb)
	optsA := append(t.HooksA.options(), cfg.OptsA...)
	optsB := append(t.HooksB.options(), cfg.OptsB...)
	if cfg.Opts != nil {
		optsA = append(optsA, cfg.Opts()...)
		optsB = append(optsB, cfg.Opts()...)
	}
	if cfg.Protect {
		optsA = append(optsA, streams.WithConnManager(t.A.ConnManager()))
		optsB = append(optsB, streams.WithConnManager(t.B.ConnManager()))
	}
	var err error
	if t.RegA, err = streams.New(optsA...); err != nil {
		tb.Fatal(err)
	}
	if t.RegB, err = streams.New(optsB...); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(t.Close)

	t.lnSvc, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	t.SvcAddr = NetAddr(tb, t.lnSvc.Addr())
	acceptLoop(t.lnSvc, &t.wg, func(c net.Conn) {
		defer c.Close()
		service(c)
	})

	svcTCP := t.lnSvc.Addr().String()
	t.B.SetStreamHandler(Proto, func(s network.Stream) {
		c, err := net.Dial("tcp", svcTCP)
		if err != nil {
			_ = s.Reset()
			return
		}
		origin, _ := ma.NewMultiaddr("/p2p/" + s.Conn().RemotePeer().String())
		_, _ = t.RegB.Bridge(s, c, origin, t.SvcAddr)
	})
	ConnectHosts(tb, t.A, t.B)

	t.lnA, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	t.Addr = t.lnA.Addr().String()
	target := P2PAddr(tb, t.B.ID())
	acceptLoop(t.lnA, &t.wg, func(c net.Conn) { forward(t.A, t.B.ID(), t.RegA, c, target) })
	return t
}

// acceptLoop runs handle in a goroutine for every connection ln accepts,
// until ln is closed. The loop and every handler count in wg.
func acceptLoop(ln net.Listener, wg *sync.WaitGroup, handle func(net.Conn)) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				handle(c)
			}()
		}
	}()
}

// forward bridges c with reg to a new stream from h to p, as `p2pd
// forward` does; it aborts c if the stream cannot be opened.
func forward(h host.Host, p peer.ID, reg *streams.Registry, c net.Conn, target ma.Multiaddr) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := h.NewStream(ctx, p, Proto)
	if err != nil {
		ends.Abort(c)
		return
	}
	origin, _ := manet.FromNetAddr(c.RemoteAddr())
	_, _ = reg.Bridge(s, c, origin, target)
}

// Close tears everything down in order: registries, hosts, listeners, then
// waits for the test goroutines. Safe to call twice.
func (t *Tunnel) Close() {
	t.closeOnce.Do(func() {
		if t.lnA != nil {
			_ = t.lnA.Close()
		}
		_ = t.RegA.Close()
		_ = t.RegB.Close()
		_ = t.A.Close()
		_ = t.B.Close()
		if t.lnSvc != nil {
			_ = t.lnSvc.Close()
		}
		t.wg.Wait()
	})
}

func (t *Tunnel) Dial(tb testing.TB) *net.TCPConn {
	tb.Helper()
	c, err := net.Dial("tcp", t.Addr)
	if err != nil {
		tb.Fatalf("dial Tunnel: %v", err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c.(*net.TCPConn)
}

// WaitFor polls cond until it holds; the long limit only guards against hangs.
func WaitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Source returns a reader of n deterministic pseudo-random bytes for seed.
func Source(seed uint64, n int64) io.Reader {
	var key [32]byte
	for i := range 8 {
		key[i] = byte(seed >> (8 * i))
	}
	return io.LimitReader(rand.NewChaCha8(key), n)
}

// SumOf returns the SHA-256 of Source(seed, n).
func SumOf(seed uint64, n int64) [32]byte {
	h := sha256.New()
	_, _ = io.Copy(h, Source(seed, n))
	return sum(h)
}

func sum(h hash.Hash) [32]byte {
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

// SendAndClose writes Source(seed, n) to c and half-closes it.
func SendAndClose(c *net.TCPConn, seed uint64, n int64) error {
	if _, err := io.Copy(c, Source(seed, n)); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	if err := c.CloseWrite(); err != nil {
		return fmt.Errorf("close write: %w", err)
	}
	return nil
}

// ReadSum reads r to EOF and returns the SHA-256 and the count.
func ReadSum(r io.Reader) ([32]byte, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	return sum(h), n, err
}

// Echo copies everything back and half-closes at EOF.
func Echo(c net.Conn) {
	if _, err := io.Copy(c, c); err != nil {
		return
	}
	_ = c.(*net.TCPConn).CloseWrite()
	_, _ = io.Copy(io.Discard, c)
}

// Endless writes pseudo-random data until the write fails.
func Endless(c net.Conn) {
	_, _ = io.Copy(c, Source(99, 1<<62))
}
