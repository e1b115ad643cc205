package gateway

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	yamux "github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"go.uber.org/goleak"

	"github.com/p2pd/p2pd/listeners"
	"github.com/p2pd/p2pd/streams"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testTimeout bounds every blocking step of a test so that a bug fails it
// instead of hanging it; it is never a pass/fail threshold.
const testTimeout = 30 * time.Second

// webProto is the protocol the test peers serve their web services under.
const webProto protocol.ID = "/x/web"

// node is a libp2p host on loopback with its stream and listener
// registries, closed in order when the test ends.
type node struct {
	h   host.Host
	s   *streams.Registry
	reg *listeners.Registry
}

func newNode(t testing.TB) *node {
	t.Helper()
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(rcmgr.InfiniteLimits))
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
		libp2p.ResourceManager(rm),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("closing host: %v", err)
		}
	})
	s := streams.NewRegistry()
	t.Cleanup(func() { s.Close() })
	reg, err := listeners.New(h, s)
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

// connect makes a know b's addresses and connects them.
func connect(t testing.TB, a, b *node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := a.h.Connect(ctx, peer.AddrInfo{ID: b.h.ID(), Addrs: b.h.Addrs()}); err != nil {
		t.Fatal(err)
	}
}

// serveWeb starts a real HTTP server on loopback and makes n serve it
// under proto (with allow, only to those peers). It returns the server.
func serveWeb(t testing.TB, n *node, proto protocol.ID, h http.Handler, allow ...peer.ID) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	listenOn(t, n, proto, srv.Listener.Addr(), allow...)
	return srv
}

// listenOn makes n serve proto by dialling addr.
func listenOn(t testing.TB, n *node, proto protocol.ID, addr net.Addr, allow ...peer.ID) {
	t.Helper()
	target, err := manet.FromNetAddr(addr)
	if err != nil {
		t.Fatal(err)
	}
	_, err = n.reg.Listen(context.Background(), listeners.ListenRequest{
		Protocol: proto, Target: target, AllowPeers: allow, AllowCustomProtocol: true,
	})
	if err != nil {
		t.Fatal(err)
	}
}

// startGateway starts a gateway on n, on a loopback port, closed when the
// test ends (before the node's registries).
func startGateway(t testing.TB, n *node, opts ...Option) *Gateway {
	t.Helper()
	g, err := New(ma.StringCast("/ip4/127.0.0.1/tcp/0"), n.reg, n.s, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// baseURL is http://HOST:PORT of g.
func baseURL(t testing.TB, g *Gateway) string {
	t.Helper()
	_, hp, err := manet.DialArgs(g.Addr())
	if err != nil {
		t.Fatal(err)
	}
	return "http://" + hp
}

// url is the gateway URL of path on peer id's protocol proto.
func gwURL(t testing.TB, g *Gateway, id peer.ID, proto protocol.ID, path string) string {
	t.Helper()
	p := "/http"
	if proto != HTTPProtocol {
		p = string(proto) + "/http"
	}
	return baseURL(t, g) + "/p2p/" + id.String() + p + path
}

// newClient is an HTTP client with its own connection pool, closed when
// the test ends.
func newClient(t testing.TB) *http.Client {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 200, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: testTimeout}
}

// get fetches url and returns the status and body.
func get(t testing.TB, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the body of %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// wantStatus fetches url and checks its status and that the body contains
// each of want.
func wantStatus(t testing.TB, c *http.Client, url string, status int, want ...string) {
	t.Helper()
	got, body := get(t, c, url)
	if got != status {
		t.Fatalf("GET %s: status %d, want %d; body: %s", url, got, status, body)
	}
	for _, w := range want {
		if !strings.Contains(body, w) {
			t.Fatalf("GET %s: body %q does not contain %q", url, body, w)
		}
	}
}

// connCounter counts the connections an httptest server accepted.
type connCounter struct {
	mu sync.Mutex // guards n
	n  int
}

func (c *connCounter) hook(_ net.Conn, st http.ConnState) {
	if st == http.StateNew {
		c.mu.Lock()
		c.n++
		c.mu.Unlock()
	}
}

func (c *connCounter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// waitFor polls cond until it holds or testTimeout passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
