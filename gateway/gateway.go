// Package gateway provides p2pd's HTTP gateway: an HTTP server on a local
// address that carries each request to a peer's web service over a libp2p
// stream. A request for
//
//	/p2p/PEER/x/PROTOCOL/http/PATH   (or /p2p/PEER/http/PATH for protocol /http)
//
// is sent as an HTTP/1.1 request for /PATH (query kept) over a stream to
// PEER speaking /x/PROTOCOL, which the peer serves with an ordinary
// `p2pd listen` in front of its web server. PEER is a peer ID, or @NAME
// for a peer advertising rendezvous NAME that serves the protocol (with
// WithRendezvousFinder).
//
// The HTTP work is net/http's: an httputil.ReverseProxy whose transport
// dials streams instead of TCP connections. Bodies stream both ways without
// being buffered whole, chunked encoding, HEAD and protocol upgrades
// (WebSocket) work as through any reverse proxy, and Host,
// X-Forwarded-For, X-Forwarded-Host and X-Forwarded-Proto are set as a
// reverse proxy sets them (plus X-Forwarded-Prefix, the path the gateway
// took off). Each client connection has a transport of its own, so the
// stream of a request is kept for that client connection's next request to
// the same peer and protocol, for as long as the peer keeps it open.
//
// Every stream is handed to the stream registry (package streams), bridged
// to one end of a socket pair whose other end the transport speaks HTTP
// over: it shows in `p2pd streams` and in events like a forward's stream,
// and `streams close` resets it.
//
// Failures are answered in the gateway's own words: 400 for a malformed
// path or peer ID, 403 for a peer that refused this node (--allow-peer),
// 404 for a peer that does not serve the protocol, 502 with the reason when
// the peer cannot be reached or its service refused or dropped the request,
// 504 when the gateway's timeout ran out.
//
// The package does not serve HTTPS or HTTP/2, rewrite response bodies, or
// cache.
package gateway

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"

	logging "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/p2pd/p2pd/streams"
)

var log = logging.Logger("p2pd/gateway")

// StreamOpener opens a stream to a peer speaking a protocol, connecting to
// the peer (and looking it up) first when needed. *listeners.Registry
// satisfies it.
type StreamOpener interface {
	OpenStream(ctx context.Context, p peer.AddrInfo, proto protocol.ID) (network.Stream, error)
}

// Bridger takes a stream and a local connection over and copies bytes
// between them. *streams.Registry satisfies it.
type Bridger interface {
	Bridge(s network.Stream, c net.Conn, origin, target ma.Multiaddr) (streams.Info, error)
}

// ErrRemoteAddr is returned (wrapped with the address) by CheckAddr and New
// for a listen address that is not loopback, without AllowRemote.
var ErrRemoteAddr = errors.New("is not a loopback address, so anyone who can reach it could reach this node's peers through it (--gateway-allow-remote allows it)")

// Gateway is the HTTP gateway. Its methods are safe for concurrent use.
type Gateway struct {
	cfg    config
	addr   ma.Multiaddr // as asked
	open   StreamOpener
	bridge Bridger
	proxy  *httputil.ReverseProxy
	names  *names // nil without a RendezvousFinder

	// Set by Start, read-only afterwards.
	bound ma.Multiaddr
	host  string // bound as HOST:PORT, the Host of requests that name none
	srv   *http.Server
	// ctx is the base of every request's context; Close cancels it,
	// which ends requests in flight, their dials and upgraded
	// connections.
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex           // guards clients, started and closed, and orders wg.Add before Close's Wait
	clients map[net.Conn]*client // client connections not yet closed or hijacked
	started bool
	closed  bool
	// wg counts the Serve goroutine and every request being served.
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// client is one HTTP client connection to the gateway.
type client struct {
	origin ma.Multiaddr    // its address, recorded with its streams
	tr     *http.Transport // its streams, kept between its requests
}

// New prepares a gateway that will listen on addr, a TCP multiaddr
// (loopback unless AllowRemote), open streams with open and hand them to
// bridge. It does no I/O.
func New(addr ma.Multiaddr, open StreamOpener, bridge Bridger, opts ...Option) (*Gateway, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if open == nil || bridge == nil {
		return nil, errors.New("gateway needs a stream opener and a bridger")
	}
	if err := CheckAddr(addr, cfg.allowRemote); err != nil {
		return nil, err
	}
	g := &Gateway{
		cfg:     cfg,
		addr:    addr,
		open:    open,
		bridge:  bridge,
		clients: make(map[net.Conn]*client),
	}
	if cfg.finder != nil {
		g.names = &names{find: cfg.finder, known: map[nameKey]*nameEntry{}}
	}
	// net/http's own complaints (a client that sent garbage, a body copy
	// cut short) are the gateway's debug log; its answers are logged by
	// fail.
	errLog, err := zap.NewStdLogAt(log.Desugar(), zapcore.DebugLevel)
	if err != nil {
		return nil, fmt.Errorf("gateway: logger: %w", err)
	}
	g.proxy = &httputil.ReverseProxy{
		Rewrite:        g.rewrite,
		Transport:      roundTripFunc(g.roundTrip),
		ModifyResponse: g.modifyResponse,
		ErrorHandler:   g.proxyError,
		BufferPool:     newBufPool(bufferSize),
		// Pass on each piece of a body as it comes (a response that
		// trickles, or stays open, reaches the client at once): the
		// pieces are the copy buffer's size when data flows fast.
		FlushInterval: -1,
		ErrorLog:      errLog,
	}
	return g, nil
}

// CheckAddr reports whether addr is an address the gateway can listen on:
// /ip4/HOST/tcp/PORT or /ip6/HOST/tcp/PORT (port 0 picks one), with a
// loopback HOST unless allowRemote.
func CheckAddr(addr ma.Multiaddr, allowRemote bool) error {
	if len(addr) != 2 || addr[1].Code() != ma.P_TCP || (addr[0].Code() != ma.P_IP4 && addr[0].Code() != ma.P_IP6) {
		return fmt.Errorf("gateway address %s: want /ip4/HOST/tcp/PORT or /ip6/HOST/tcp/PORT", addr)
	}
	if !allowRemote && !manet.IsIPLoopback(addr) {
		return fmt.Errorf("gateway address %s %w", addr, ErrRemoteAddr)
	}
	return nil
}

// Start binds the gateway's address and starts serving. ctx bounds only
// the binding.
func (g *Gateway) Start(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed || g.started {
		return errors.New("gateway already started or closed")
	}
	netw, addr, err := manet.DialArgs(g.addr)
	if err != nil {
		return fmt.Errorf("gateway address %s: %w", g.addr, err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, netw, addr)
	if err != nil {
		return fmt.Errorf("listening for the gateway on %s: %w", g.addr, err)
	}
	g.host = ln.Addr().String()
	if g.bound, err = manet.FromNetAddr(ln.Addr()); err != nil {
		ln.Close()
		return fmt.Errorf("listening for the gateway on %s: reading the bound address: %w", g.addr, err)
	}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	g.srv = &http.Server{
		Handler:           http.HandlerFunc(g.serve),
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       g.cfg.idleTimeout,
		BaseContext:       func(net.Listener) context.Context { return g.ctx },
		ConnContext:       g.connContext,
		ConnState:         g.connState,
		ErrorLog:          g.proxy.ErrorLog,
	}
	g.started = true
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := g.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Errorw("gateway: serving stopped", "addr", g.bound, "err", err)
		}
	}()
	log.Infow("gateway listening", "addr", g.bound)
	return nil
}

// Addr is the address the gateway is bound to (after Start; the real port
// when it was 0).
func (g *Gateway) Addr() ma.Multiaddr {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.bound
}

// Close stops the gateway: it stops listening, ends the requests in flight
// and upgraded connections, closes the streams kept for client connections
// and waits for its goroutines. Streams already handed to the stream
// registry end when their HTTP connection closes. It is safe to call more
// than once.
func (g *Gateway) Close() error {
	g.closeOnce.Do(func() {
		g.mu.Lock()
		g.closed = true
		srv := g.srv
		g.mu.Unlock()
		if srv == nil {
			return
		}
		g.cancel()
		srv.Close()
		g.wg.Wait()
		g.mu.Lock()
		clients := g.clients
		g.clients = map[net.Conn]*client{}
		g.mu.Unlock()
		for _, cl := range clients {
			cl.tr.CloseIdleConnections()
		}
	})
	return nil
}

// enter counts a request in g.wg unless the gateway is closing.
func (g *Gateway) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.wg.Add(1)
	return true
}

type clientKey struct{}

// connContext gives each client connection its own transport.
func (g *Gateway) connContext(ctx context.Context, c net.Conn) context.Context {
	origin, err := manet.FromNetAddr(c.RemoteAddr())
	if err != nil {
		origin = g.bound
	}
	cl := &client{origin: origin}
	cl.tr = &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return g.dial(ctx, cl.origin)
		},
		// One request at a time comes over a client connection: one
		// kept stream per peer and protocol is enough.
		MaxIdleConnsPerHost:   1,
		IdleConnTimeout:       g.cfg.idleTimeout,
		ResponseHeaderTimeout: g.cfg.timeout,
		// Bodies pass as they are; the peer's Content-Encoding too.
		DisableCompression: true,
	}
	g.mu.Lock()
	g.clients[c] = cl
	g.mu.Unlock()
	return context.WithValue(ctx, clientKey{}, cl)
}

// connState closes the kept streams of a client connection that is gone
// (or taken over by an upgrade).
func (g *Gateway) connState(c net.Conn, st http.ConnState) {
	if st != http.StateClosed && st != http.StateHijacked {
		return
	}
	g.mu.Lock()
	cl := g.clients[c]
	delete(g.clients, c)
	g.mu.Unlock()
	if cl != nil {
		cl.tr.CloseIdleConnections()
	}
}

// exchange is one request through the gateway.
type exchange struct {
	target target
	conn   atomic.Pointer[streamConn] // the stream connection the request went over
}

type exchangeKey struct{}

func exchangeFrom(ctx context.Context) *exchange {
	ex, _ := ctx.Value(exchangeKey{}).(*exchange)
	return ex
}

// serve answers one request.
func (g *Gateway) serve(w http.ResponseWriter, r *http.Request) {
	if !g.enter() {
		http.Error(w, "p2pd gateway: shutting down", http.StatusServiceUnavailable)
		return
	}
	defer g.wg.Done()
	// A browser always names a Host; only a script may leave it out.
	if !g.cfg.allowRemote && r.Host != "" && !loopbackHost(r.Host) {
		g.fail(w, r, nil, http.StatusForbidden, fmt.Sprintf("Host %q is not a loopback address or localhost: this gateway serves only requests made on this machine to this machine", r.Host))
		return
	}
	t, err := parsePath(r.URL.EscapedPath())
	if err != nil {
		g.fail(w, r, nil, http.StatusBadRequest, err.Error())
		return
	}
	if t.name != "" && g.names == nil {
		g.fail(w, r, &t, http.StatusBadRequest, fmt.Sprintf("peer @%s: this daemon cannot pick peers by rendezvous name; use a peer ID", t.name))
		return
	}
	ex := &exchange{target: t}
	ctx := context.WithValue(r.Context(), exchangeKey{}, ex)
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) {
			if sc, ok := info.Conn.(*streamConn); ok {
				ex.conn.Store(sc)
			}
		},
	})
	g.proxy.ServeHTTP(w, r.WithContext(ctx))
}

// rewrite turns the client's request into the request to the peer.
func (g *Gateway) rewrite(pr *httputil.ProxyRequest) {
	t := exchangeFrom(pr.In.Context()).target
	u := pr.Out.URL
	u.Scheme = "http"
	// The host only keys the client transport's pool of kept streams.
	u.Host = hex.EncodeToString([]byte(string(t.peer) + "@" + t.name + " " + string(t.proto)))
	u.RawPath = t.rest
	if p, err := url.PathUnescape(t.rest); err == nil {
		u.Path = p
	} else {
		u.Path, u.RawPath = t.rest, ""
	}
	pr.Out.Host = pr.In.Host
	if pr.Out.Host == "" { // HTTP/1.0 without Host
		pr.Out.Host = g.host
	}
	pr.SetXForwarded()
	pr.Out.Header.Set("X-Forwarded-Prefix", t.prefix)
}

// modifyResponse makes a redirect to a path of the peer's site stay on
// that site under the gateway.
func (g *Gateway) modifyResponse(res *http.Response) error {
	ex := exchangeFrom(res.Request.Context())
	if loc := res.Header.Get("Location"); ex != nil && strings.HasPrefix(loc, "/") && !strings.HasPrefix(loc, "//") {
		res.Header.Set("Location", ex.target.prefix+loc)
	}
	return nil
}

// roundTripFunc is an http.RoundTripper.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// roundTrip sends a request over its client connection's transport.
func (g *Gateway) roundTrip(r *http.Request) (*http.Response, error) {
	cl, ok := r.Context().Value(clientKey{}).(*client)
	if !ok {
		return nil, errors.New("gateway: request without a client connection")
	}
	return cl.tr.RoundTrip(r)
}

// loopbackHost reports whether a Host header names this machine:
// localhost, a name under .localhost, or a loopback IP, with any port.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && ip.IsLoopback()
}

// bufPool is the ReverseProxy's pool of copy buffers.
type bufPool struct {
	size int
	p    sync.Pool
}

func newBufPool(size int) *bufPool { return &bufPool{size: size} }

func (b *bufPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, b.size)
}

func (b *bufPool) Put(buf []byte) { b.p.Put(&buf) }
