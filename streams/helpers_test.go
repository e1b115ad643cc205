package streams

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
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const testProto = protocol.ID("/x/streams-test")

// newHost builds a libp2p host on loopback TCP with TLS and yamux, no relay,
// no metrics and no resource limits (the tests open hundreds of streams).
func newHost(tb testing.TB) host.Host {
	tb.Helper()
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(rcmgr.InfiniteLimits))
	if err != nil {
		tb.Fatalf("resource manager: %v", err)
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
		tb.Fatalf("libp2p.New: %v", err)
	}
	return h
}

// connectHosts connects a to b.
func connectHosts(tb testing.TB, a, b host.Host) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		tb.Fatalf("connect: %v", err)
	}
}

func p2pAddr(tb testing.TB, id peer.ID) ma.Multiaddr {
	tb.Helper()
	a, err := ma.NewMultiaddr("/p2p/" + id.String())
	if err != nil {
		tb.Fatalf("p2p multiaddr: %v", err)
	}
	return a
}

func netAddr(tb testing.TB, a net.Addr) ma.Multiaddr {
	tb.Helper()
	m, err := manet.FromNetAddr(a)
	if err != nil {
		tb.Fatalf("multiaddr of %v: %v", a, err)
	}
	return m
}

// hookLog records the calls of the OnOpen and OnClose hooks.
type hookLog struct {
	mu     sync.Mutex // guards opened, closed
	opened []Info
	closed []closeEvent
	ch     chan closeEvent // every close event is also sent here (buffered)
}

type closeEvent struct {
	info Info
	err  error
}

func newHookLog() *hookLog { return &hookLog{ch: make(chan closeEvent, 1024)} }

func (h *hookLog) options() []Option {
	return []Option{
		WithOnOpen(func(i Info) {
			h.mu.Lock()
			h.opened = append(h.opened, i)
			h.mu.Unlock()
		}),
		WithOnClose(func(i Info, err error) {
			h.mu.Lock()
			h.closed = append(h.closed, closeEvent{i, err})
			h.mu.Unlock()
			h.ch <- closeEvent{i, err}
		}),
	}
}

func (h *hookLog) snapshot() ([]Info, []closeEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Info(nil), h.opened...), append([]closeEvent(nil), h.closed...)
}

// next waits for the next close event.
func (h *hookLog) next(tb testing.TB) closeEvent {
	tb.Helper()
	select {
	case ev := <-h.ch:
		return ev
	case <-time.After(20 * time.Second):
		tb.Fatal("no OnClose call within 20s")
		return closeEvent{}
	}
}

// tunnel is a mini forward built for the tests: a client dials lnA; each
// accepted conn is bridged by regA to a stream to B; B's handler dials the
// service and bridges the stream to it with regB.
type tunnel struct {
	a, b       host.Host
	regA, regB *Registry
	hooksA     *hookLog
	hooksB     *hookLog
	addr       string // where clients dial
	svcAddr    ma.Multiaddr
	lnA, lnSvc net.Listener
	wg         sync.WaitGroup // accept loops, forward goroutines, service handlers
	closeOnce  sync.Once
}

type tunnelConfig struct {
	optsA, optsB []Option
	protect      bool // give each registry its host's conn manager
}

// newTunnel starts the tunnel with service run for each service connection.
// service must return once its connection fails.
func newTunnel(tb testing.TB, service func(net.Conn), cfg tunnelConfig) *tunnel {
	tb.Helper()
	t := &tunnel{hooksA: newHookLog(), hooksB: newHookLog()}
	t.a, t.b = newHost(tb), newHost(tb)
	optsA := append(t.hooksA.options(), cfg.optsA...)
	optsB := append(t.hooksB.options(), cfg.optsB...)
	if cfg.protect {
		optsA = append(optsA, WithConnManager(t.a.ConnManager()))
		optsB = append(optsB, WithConnManager(t.b.ConnManager()))
	}
	var err error
	if t.regA, err = New(optsA...); err != nil {
		tb.Fatal(err)
	}
	if t.regB, err = New(optsB...); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(t.close)

	t.lnSvc, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	t.svcAddr = netAddr(tb, t.lnSvc.Addr())
	t.goLoop(func() {
		for {
			c, err := t.lnSvc.Accept()
			if err != nil {
				return
			}
			t.goLoop(func() {
				defer c.Close()
				service(c)
			})
		}
	})

	svcTCP := t.lnSvc.Addr().String()
	t.b.SetStreamHandler(testProto, func(s network.Stream) {
		c, err := net.Dial("tcp", svcTCP)
		if err != nil {
			_ = s.Reset()
			return
		}
		origin, _ := ma.NewMultiaddr("/p2p/" + s.Conn().RemotePeer().String())
		_, _ = t.regB.Bridge(s, c, origin, t.svcAddr)
	})
	connectHosts(tb, t.a, t.b)

	t.lnA, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	t.addr = t.lnA.Addr().String()
	target := p2pAddr(tb, t.b.ID())
	t.goLoop(func() {
		for {
			c, err := t.lnA.Accept()
			if err != nil {
				return
			}
			t.goLoop(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				s, err := t.a.NewStream(ctx, t.b.ID(), testProto)
				if err != nil {
					abortConn(c)
					return
				}
				origin, _ := manet.FromNetAddr(c.RemoteAddr())
				_, _ = t.regA.Bridge(s, c, origin, target)
			})
		}
	})
	return t
}

func (t *tunnel) goLoop(f func()) {
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		f()
	}()
}

// close tears everything down in order: registries, hosts, listeners, then
// waits for the test goroutines. Safe to call twice.
func (t *tunnel) close() {
	t.closeOnce.Do(func() {
		if t.lnA != nil {
			_ = t.lnA.Close()
		}
		_ = t.regA.Close()
		_ = t.regB.Close()
		_ = t.a.Close()
		_ = t.b.Close()
		if t.lnSvc != nil {
			_ = t.lnSvc.Close()
		}
		t.wg.Wait()
	})
}

func (t *tunnel) dial(tb testing.TB) *net.TCPConn {
	tb.Helper()
	c, err := net.Dial("tcp", t.addr)
	if err != nil {
		tb.Fatalf("dial tunnel: %v", err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c.(*net.TCPConn)
}

// waitFor polls cond until it holds; the long limit only guards against hangs.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// source returns a reader of n deterministic pseudo-random bytes for seed.
func source(seed uint64, n int64) io.Reader {
	var key [32]byte
	for i := range 8 {
		key[i] = byte(seed >> (8 * i))
	}
	return io.LimitReader(rand.NewChaCha8(key), n)
}

// sumOf returns the SHA-256 of source(seed, n).
func sumOf(seed uint64, n int64) [32]byte {
	h := sha256.New()
	_, _ = io.Copy(h, source(seed, n))
	return sum(h)
}

func sum(h hash.Hash) [32]byte {
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

// sendAndClose writes source(seed, n) to c and half-closes it.
func sendAndClose(c *net.TCPConn, seed uint64, n int64) error {
	if _, err := io.Copy(c, source(seed, n)); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	if err := c.CloseWrite(); err != nil {
		return fmt.Errorf("close write: %w", err)
	}
	return nil
}

// readSum reads r to EOF and returns the SHA-256 and the count.
func readSum(r io.Reader) ([32]byte, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	return sum(h), n, err
}

// echo copies everything back and half-closes at EOF.
func echo(c net.Conn) {
	if _, err := io.Copy(c, c); err != nil {
		return
	}
	_ = c.(*net.TCPConn).CloseWrite()
	_, _ = io.Copy(io.Discard, c)
}

// endless writes pseudo-random data until the write fails.
func endless(c net.Conn) {
	_, _ = io.Copy(c, source(99, 1<<62))
}
