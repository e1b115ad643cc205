package listeners

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	logging "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	yamux "github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"go.uber.org/goleak"

	"github.com/p2pd/p2pd/streams"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testTimeout bounds every blocking step of a test so a bug fails the test
// instead of hanging it; it is never a pass/fail threshold.
const testTimeout = 30 * time.Second

// newHost builds a real libp2p host on loopback TCP with TLS and yamux.
func newHost(t testing.TB) host.Host {
	t.Helper()
	return newHostWith(t, libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
}

// newHostWith is newHost with options of the test's own (identity, listen
// addresses). The host is closed at the end of the test.
func newHostWith(t testing.TB, opts ...libp2p.Option) host.Host {
	t.Helper()
	return buildHost(t, append(opts,
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
	)...)
}

// newQUICHost builds a real libp2p host that speaks QUIC only, on
// loopback. The host is closed at the end of the test.
func newQUICHost(t testing.TB) host.Host {
	t.Helper()
	return buildHost(t,
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/udp/0/quic-v1"),
		libp2p.Transport(libp2pquic.NewTransport),
	)
}

// buildHost builds a host with opts, no relay, no metrics and no resource
// limits, and closes it at the end of the test.
func buildHost(t testing.TB, opts ...libp2p.Option) host.Host {
	t.Helper()
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(rcmgr.InfiniteLimits))
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(append(opts,
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
		libp2p.ResourceManager(rm),
	)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("closing host: %v", err)
		}
	})
	return h
}

// node is a host with its stream and listener registries.
type node struct {
	h   host.Host
	s   *streams.Registry
	reg *Registry
}

// newNode builds a node; the registries are shut down before the host is
// closed.
func newNode(t testing.TB, opts ...Option) *node {
	t.Helper()
	return newNodeOn(t, newHost(t), opts...)
}

// newNodeOn is newNode on a host of the test's own.
func newNodeOn(t testing.TB, h host.Host, opts ...Option) *node {
	t.Helper()
	s := streams.NewRegistry()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("closing stream registry: %v", err)
		}
	})
	reg, err := New(h, s, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := reg.Shutdown(); err != nil {
			t.Errorf("shutting down listener registry: %v", err)
		}
	})
	return &node{h: h, s: s, reg: reg}
}

// addrInfo returns h's ID and addresses.
func addrInfo(h host.Host) peer.AddrInfo {
	return peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}
}

// p2pAddr returns /p2p/<id>.
func p2pAddr(t testing.TB, id peer.ID) ma.Multiaddr {
	t.Helper()
	c, err := ma.NewComponent("p2p", id.String())
	if err != nil {
		t.Fatal(err)
	}
	return c.Multiaddr()
}

func mustAddr(t testing.TB, s string) ma.Multiaddr {
	t.Helper()
	a, err := ma.NewMultiaddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// service is a real TCP server on loopback that runs handle for each
// connection and counts the connections it accepted.
type service struct {
	ln       net.Listener
	addr     ma.Multiaddr
	accepted atomic.Int64
	wg       sync.WaitGroup
	mu       sync.Mutex // guards conns
	conns    []net.Conn
}

func newService(t testing.TB, handle func(net.Conn)) *service {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr, err := manet.FromNetAddr(ln.Addr())
	if err != nil {
		t.Fatal(err)
	}
	s := &service{ln: ln, addr: addr}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

// echo copies a connection's bytes back to it and half-closes at EOF.
func echo(c net.Conn) {
	_, _ = io.Copy(c, c)
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}

// source returns n deterministic pseudo-random bytes for seed.
func source(seed byte, n int64) io.Reader {
	return io.LimitReader(rand.NewChaCha8([32]byte{seed}), n)
}

// sendHashed copies src to w and returns the SHA-256 of what it sent.
func sendHashed(w io.Writer, src io.Reader) ([32]byte, error) {
	h := sha256.New()
	_, err := io.Copy(w, io.TeeReader(src, h))
	return [32]byte(h.Sum(nil)), err
}

// recvHashed reads r to EOF and returns the SHA-256 of what it read.
func recvHashed(r io.Reader) ([32]byte, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	return [32]byte(h.Sum(nil)), n, err
}

// roundTrip sends msg over a fresh connection to addr, half-closes, and
// returns everything read back.
func roundTrip(t testing.TB, addr ma.Multiaddr, msg []byte) ([]byte, error) {
	t.Helper()
	c, err := manet.Dial(addr)
	if err != nil {
		// A connection the server resets at once can fail in connect.
		return nil, fmt.Errorf("dialling %s: %w", addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(testTimeout))
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(msg)
		if err == nil {
			err = c.(interface{ CloseWrite() error }).CloseWrite()
		}
		errc <- err
	}()
	got, rerr := io.ReadAll(c)
	werr := <-errc
	return got, errors.Join(rerr, werr)
}

// checkEcho asserts that a round trip through addr returns msg intact.
func checkEcho(t testing.TB, addr ma.Multiaddr, msg []byte) {
	t.Helper()
	got, err := roundTrip(t, addr, msg)
	if err != nil {
		t.Fatalf("round trip through %s: %v", addr, err)
	}
	if sha256.Sum256(got) != sha256.Sum256(msg) {
		t.Fatalf("round trip through %s: got %d bytes back, want the %d sent", addr, len(got), len(msg))
	}
}

// readLine reads one line from c.
func readLine(c net.Conn) (string, *bufio.Reader, error) {
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	return line, br, err
}

// finder is a PeerFinder backed by a fixed table: a real lookup source for
// tests, standing in for the DHT.
type finder struct {
	mu    sync.Mutex // guards peers and calls
	peers map[peer.ID]peer.AddrInfo
	calls int
}

func (f *finder) FindPeer(ctx context.Context, id peer.ID) (peer.AddrInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	ai, ok := f.peers[id]
	if !ok {
		return peer.AddrInfo{}, errors.New("routing: not found")
	}
	return ai, nil
}

func (f *finder) lookups() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// blockingFinder blocks every lookup until its context ends, reporting
// each call on started.
type blockingFinder struct {
	started chan struct{}
}

func (f *blockingFinder) FindPeer(ctx context.Context, id peer.ID) (peer.AddrInfo, error) {
	f.started <- struct{}{}
	<-ctx.Done()
	return peer.AddrInfo{}, ctx.Err()
}

// refused reports whether nothing listens on addr any more.
func refused(t testing.TB, addr ma.Multiaddr) bool {
	t.Helper()
	c, err := manet.Dial(addr)
	if err == nil {
		c.Close()
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// logCapture collects what this package logs at warn level and above.
type logCapture struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (l *logCapture) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logCapture) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// has reports whether some captured log entry has all of fields.
func (l *logCapture) has(fields map[string]string) bool {
	for _, line := range strings.Split(l.String(), "\n") {
		var entry map[string]any
		if json.Unmarshal([]byte(line), &entry) != nil {
			continue
		}
		all := true
		for k, v := range fields {
			if entry[k] != v {
				all = false
			}
		}
		if all {
			return true
		}
	}
	return false
}

// captureLogs raises this package's log level to warn for the test and
// returns what it logs.
func captureLogs(t testing.TB) *logCapture {
	t.Helper()
	prev, err := logging.SubsystemLevelName("p2pd/listeners")
	if err != nil {
		t.Fatal(err)
	}
	if err := logging.SetLogLevel("p2pd/listeners", "warn"); err != nil {
		t.Fatal(err)
	}
	pipe := logging.NewPipeReader(logging.PipeLevel(logging.LevelWarn))
	l := &logCapture{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(l, pipe)
	}()
	t.Cleanup(func() {
		_ = pipe.Close()
		<-done
		_ = logging.SetLogLevel("p2pd/listeners", prev)
	})
	return l
}

// waitFor polls cond until it holds or the test timeout passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
