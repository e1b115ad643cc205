package gateway

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/p2pd/p2pd/internal/nettest"
	"github.com/p2pd/p2pd/streams"
)

// seen is what the test web service reports about a request it got.
type seen struct {
	Method, Path, RawPath, Query, Host string
	Forwarded                          map[string]string
	Streams                            []streams.Info // the gateway node's streams while it answered
}

// echoRequest answers with what it saw of the request, and the streams of
// gw (the gateway's node) at that moment.
func echoRequest(gw *node) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := seen{
			Method: r.Method, Path: r.URL.Path, RawPath: r.URL.RawPath, Query: r.URL.RawQuery, Host: r.Host,
			Forwarded: map[string]string{},
			Streams:   gw.s.List(),
		}
		for _, h := range []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Prefix"} {
			s.Forwarded[h] = r.Header.Get(h)
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(s)
	})
}

func TestRequestReachesThePeer(t *testing.T) {
	a, b := newNode(t), newNode(t)
	serveWeb(t, b, webProto, echoRequest(a))
	serveWeb(t, b, HTTPProtocol, echoRequest(a))
	connect(t, a, b)
	g := startGateway(t, a)
	c := newClient(t)

	for _, tc := range []struct {
		name, url, path, rawPath, query, prefix string
		proto                                   protocol.ID
	}{
		{
			name: "x protocol", url: gwURL(t, g, b.h.ID(), webProto, "/dir/page?q=1&r=a%20b"),
			path: "/dir/page", query: "q=1&r=a%20b", proto: webProto, prefix: "/p2p/" + b.h.ID().String() + "/x/web/http",
		},
		{
			name: "http protocol", url: gwURL(t, g, b.h.ID(), HTTPProtocol, ""),
			path: "/", prefix: "/p2p/" + b.h.ID().String() + "/http", proto: HTTPProtocol,
		},
		{
			name: "escaped slash kept", url: gwURL(t, g, b.h.ID(), webProto, "/a%2Fb"),
			path: "/a/b", rawPath: "/a%2Fb", proto: webProto, prefix: "/p2p/" + b.h.ID().String() + "/x/web/http",
		},
	} {
		proto := tc.proto
		t.Run(tc.name, func(t *testing.T) {
			status, body := get(t, c, tc.url)
			if status != http.StatusOK {
				t.Fatalf("status %d: %s", status, body)
			}
			var s seen
			if err := json.Unmarshal([]byte(body), &s); err != nil {
				t.Fatal(err)
			}
			host := strings.TrimPrefix(baseURL(t, g), "http://")
			if s.Method != "GET" || s.Path != tc.path || s.RawPath != tc.rawPath || s.Query != tc.query || s.Host != host {
				t.Errorf("service saw %s %s (raw %q) query %q host %s; want GET %s (raw %q) query %q host %s",
					s.Method, s.Path, s.RawPath, s.Query, s.Host, tc.path, tc.rawPath, tc.query, host)
			}
			want := map[string]string{"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "http",
				"X-Forwarded-Host": host, "X-Forwarded-Prefix": tc.prefix}
			for h, v := range want {
				if s.Forwarded[h] != v {
					t.Errorf("%s: %q, want %q", h, s.Forwarded[h], v)
				}
			}
			// The request's stream is in the gateway node's registry like
			// any forward's, and stays there, counting, for the client
			// connection's next request.
			ours := func(st streams.Info) bool {
				return st.Peer == b.h.ID() && st.Protocol == proto && st.Target.String() == "/p2p/"+b.h.ID().String() &&
					strings.HasPrefix(st.Origin.String(), "/ip4/127.0.0.1/tcp/")
			}
			if !slices.ContainsFunc(s.Streams, ours) {
				t.Errorf("no stream to %s for %s in the gateway node's registry while the service answered: %+v", b.h.ID(), proto, s.Streams)
			}
			waitFor(t, "the kept stream to count the exchange", func() bool {
				return slices.ContainsFunc(a.s.List(), func(st streams.Info) bool {
					return ours(st) && st.BytesOut > 0 && st.BytesIn >= uint64(len(body))
				})
			})
		})
	}
}

func TestKeepAliveReusesTheStream(t *testing.T) {
	a, b := newNode(t), newNode(t)
	var conns connCounter
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = conns.hook
	srv.Start()
	t.Cleanup(srv.Close)
	listenOn(t, b, webProto, srv.Listener.Addr())
	connect(t, a, b)
	g := startGateway(t, a)
	url := gwURL(t, g, b.h.ID(), webProto, "/")

	c1 := newClient(t)
	for range 5 {
		wantStatus(t, c1, url, http.StatusOK, "ok")
	}
	if n := conns.count(); n != 1 {
		t.Fatalf("5 requests over one client connection reached the service over %d connections, want 1", n)
	}
	if n := a.s.Len(); n != 1 {
		t.Fatalf("%d streams open on the gateway node between requests, want the 1 kept", n)
	}
	c2 := newClient(t)
	wantStatus(t, c2, url, http.StatusOK, "ok")
	if n := conns.count(); n != 2 {
		t.Fatalf("a second client connection reached the service over %d connections in all, want 2", n)
	}

	// A client connection that closes takes its kept stream with it.
	c1.Transport.(*http.Transport).CloseIdleConnections()
	c2.Transport.(*http.Transport).CloseIdleConnections()
	waitFor(t, "the kept streams to close", func() bool { return a.s.Len() == 0 })

	// The peer closing a kept stream is no error for the next request.
	wantStatus(t, c1, url, http.StatusOK, "ok")
	srv.CloseClientConnections()
	waitFor(t, "the peer's close to reach the gateway", func() bool { return a.s.Len() == 0 })
	wantStatus(t, c1, url, http.StatusOK, "ok")
}

// hashed is a deterministic byte source.
func hashed(seed uint64, n int64) io.Reader {
	return io.LimitReader(rand.NewChaCha8([32]byte{byte(seed)}), n)
}

// onlyReader hides the length of a body, so it goes chunked.
type onlyReader struct{ io.Reader }

func TestLargeBodiesBothWays(t *testing.T) {
	const size = 8 << 20
	a, b := newNode(t), newNode(t)
	serveWeb(t, b, webProto, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPost:
			h := sha256.New()
			n, err := io.Copy(h, r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
		default:
			if r.URL.Query().Get("length") == "known" {
				w.Header().Set("Content-Length", fmt.Sprint(size))
			}
			io.Copy(w, hashed(7, size))
		}
	}))
	connect(t, a, b)
	g := startGateway(t, a)
	c := newClient(t)
	h := sha256.New()
	io.Copy(h, hashed(7, size))
	want := hex.EncodeToString(h.Sum(nil))

	for _, length := range []string{"known", "chunked"} {
		t.Run("download "+length, func(t *testing.T) {
			resp, err := c.Get(gwURL(t, g, b.h.ID(), webProto, "/?length="+length))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if (length == "chunked") != (resp.ContentLength == -1) {
				t.Errorf("content length %d for a %s body", resp.ContentLength, length)
			}
			h := sha256.New()
			n, err := io.Copy(h, resp.Body)
			if err != nil || n != size || hex.EncodeToString(h.Sum(nil)) != want {
				t.Fatalf("got %d bytes (err %v) hashing %x, want %d hashing %s", n, err, h.Sum(nil), size, want)
			}
		})
		t.Run("upload "+length, func(t *testing.T) {
			var body io.Reader = hashed(7, size)
			if length == "chunked" {
				body = onlyReader{body}
			} else {
				body = io.LimitReader(bytes.NewReader(mustRead(t, hashed(7, size))), size)
			}
			req, err := http.NewRequest(http.MethodPost, gwURL(t, g, b.h.ID(), webProto, "/"), body)
			if err != nil {
				t.Fatal(err)
			}
			if length == "known" {
				req.ContentLength = size
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, _ := io.ReadAll(resp.Body)
			if string(got) != fmt.Sprintf("%d %s", size, want) {
				t.Fatalf("service received %q, want %d bytes hashing %s", got, size, want)
			}
		})
	}
}

func mustRead(t testing.TB, r io.Reader) []byte {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHead(t *testing.T) {
	a, b := newNode(t), newNode(t)
	serveWeb(t, b, webProto, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "12345")
		w.Header().Set("X-Method", r.Method)
		if r.Method != http.MethodHead {
			w.Write(make([]byte, 12345))
		}
	}))
	connect(t, a, b)
	g := startGateway(t, a)
	c := newClient(t)
	resp, err := c.Head(gwURL(t, g, b.h.ID(), webProto, "/"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ContentLength != 12345 || resp.Header.Get("X-Method") != "HEAD" {
		t.Fatalf("HEAD: status %d, length %d, method seen %q", resp.StatusCode, resp.ContentLength, resp.Header.Get("X-Method"))
	}
	// The kept stream is still good after a body-less answer.
	wantStatus(t, c, gwURL(t, g, b.h.ID(), webProto, "/"), http.StatusOK)
}

func TestRedirectStaysUnderTheGateway(t *testing.T) {
	a, b := newNode(t), newNode(t)
	serveWeb(t, b, webProto, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/":
			http.Redirect(w, r, "/login?next=%2F", http.StatusFound)
		case "/away":
			http.Redirect(w, r, "https://example.com/", http.StatusFound)
		default:
			io.WriteString(w, "page "+r.URL.Path)
		}
	}))
	connect(t, a, b)
	g := startGateway(t, a)
	c := newClient(t)
	wantStatus(t, c, gwURL(t, g, b.h.ID(), webProto, "/"), http.StatusOK, "page /login")

	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Get(gwURL(t, g, b.h.ID(), webProto, "/away"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); loc != "https://example.com/" {
		t.Fatalf("an absolute redirect became %q", loc)
	}
}

func TestUpgrade(t *testing.T) {
	a, b := newNode(t), newNode(t)
	serveWeb(t, b, webProto, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			http.Error(w, "want Upgrade: echo", http.StatusBadRequest)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		io.Copy(c, brw)
	}))
	connect(t, a, b)
	g := startGateway(t, a)

	conn := upgrade(t, g, b.h.ID())
	br := bufio.NewReader(conn)
	for i := range 3 {
		msg := fmt.Sprintf("message %d\n", i)
		if _, err := io.WriteString(conn, msg); err != nil {
			t.Fatal(err)
		}
		got, err := br.ReadString('\n')
		if err != nil || got != msg {
			t.Fatalf("echo: %q, %v; want %q", got, err, msg)
		}
	}
	if n := a.s.Len(); n != 1 {
		t.Fatalf("%d streams during the upgraded exchange, want 1", n)
	}

	// Closing the gateway ends upgraded connections too.
	conn2 := upgrade(t, g, b.h.ID())
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := conn2.Read(make([]byte, 1)); err == nil {
		t.Fatal("an upgraded connection outlived the gateway")
	}
}

// upgrade opens a client connection to g asking peer id's web service to
// switch to the echo protocol, and returns it once the 101 has been read.
func upgrade(t testing.TB, g *Gateway, id peer.ID) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(baseURL(t, g), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET /p2p/%s/x/web/http/ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n", id)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d, want 101: %s", resp.StatusCode, b)
	}
	if br.Buffered() > 0 {
		t.Fatal("bytes after the 101 before anything was sent")
	}
	return conn
}

func TestResponseCutShort(t *testing.T) {
	a, b := newNode(t), newNode(t)
	serveWeb(t, b, webProto, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("length") == "known" {
			w.Header().Set("Content-Length", "100000")
		}
		w.Write(make([]byte, 50000))
		http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler) // the connection is cut
	}))
	connect(t, a, b)
	g := startGateway(t, a)
	c := newClient(t)
	for _, length := range []string{"known", "chunked"} {
		t.Run(length, func(t *testing.T) {
			resp, err := c.Get(gwURL(t, g, b.h.ID(), webProto, "/?length="+length))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			n, err := io.Copy(io.Discard, resp.Body)
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("read %d bytes of a cut response, error %v; want an unexpected EOF", n, err)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	a, b := newNode(t), newNode(t)
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	serveWeb(t, b, webProto, ok)
	serveWeb(t, b, "/x/private", ok, a.h.ID()) // a is allowed
	other := newNode(t)
	serveWeb(t, b, "/x/others-only", ok, other.h.ID())
	listenOn(t, b, "/x/down", nettest.RefusingAddr(t))
	stuck := make(chan struct{})
	serveWeb(t, b, "/x/stuck", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stuck:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(stuck) }) // before the server's Close waits for the handler
	connect(t, a, b)
	// Only the case that waits for the timeout gets the short one: under
	// load, any other case could run past 300 ms and be answered 504.
	g := startGateway(t, a, Timeout(time.Minute))
	short := startGateway(t, a, Timeout(testTimeoutShort))
	c := newClient(t)
	base := baseURL(t, g)
	bid := b.h.ID()
	unknown := randomPeer(t)

	tests := []struct {
		name   string
		url    string
		host   string
		status int
		want   []string
	}{
		{name: "served", url: gwURL(t, g, bid, webProto, "/"), status: http.StatusOK, want: []string{"ok"}},
		{name: "allowed peer", url: gwURL(t, g, bid, "/x/private", "/"), status: http.StatusOK, want: []string{"ok"}},
		{name: "not a gateway path", url: base + "/index.html", status: http.StatusBadRequest,
			want: []string{"p2pd gateway: malformed gateway path", "want /p2p/PEER/http/PATH"}},
		{name: "bad peer id", url: base + "/p2p/12D3KooWnotapeer/http/", status: http.StatusBadRequest,
			want: []string{`invalid peer ID "12D3KooWnotapeer"`}},
		{name: "no http segment", url: base + "/p2p/" + bid.String() + "/x/web/index.html", status: http.StatusBadRequest,
			want: []string{"no /http segment"}},
		{name: "name without resolver", url: base + "/p2p/@team/x/web/http/", status: http.StatusBadRequest,
			want: []string{"cannot pick peers by rendezvous name"}},
		{name: "this node", url: gwURL(t, g, a.h.ID(), webProto, "/"), status: http.StatusBadRequest,
			want: []string{"is this node itself"}},
		{name: "foreign host", url: gwURL(t, g, bid, webProto, "/"), host: "attacker.example:80", status: http.StatusForbidden,
			want: []string{`Host "attacker.example:80" is not a loopback address`}},
		{name: "protocol not served", url: gwURL(t, g, bid, "/x/none", "/"), status: http.StatusNotFound,
			want: []string{"peer " + bid.String() + " does not serve /x/none"}},
		{name: "http protocol not served", url: gwURL(t, g, bid, HTTPProtocol, "/"), status: http.StatusNotFound,
			want: []string{"does not serve /http"}},
		{name: "refused by allow-peer", url: gwURL(t, g, bid, "/x/others-only", "/"), status: http.StatusForbidden,
			want: []string{"peer " + bid.String() + " refused this node for /x/others-only: not in its listen's --allow-peer list"}},
		{name: "service down", url: gwURL(t, g, bid, "/x/down", "/"), status: http.StatusBadGateway,
			want: []string{"serves /x/down, but its service there is unreachable"}},
		{name: "peer unreachable", url: gwURL(t, g, unknown, webProto, "/"), status: http.StatusBadGateway,
			want: []string{"cannot reach peer " + unknown.String(), "no known addresses"}},
		{name: "service silent", url: gwURL(t, short, bid, "/x/stuck", "/"), status: http.StatusGatewayTimeout,
			want: []string{"did not answer within " + testTimeoutShort.String()}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, tc.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.host != "" {
				req.Host = tc.host
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body := string(mustRead(t, resp.Body))
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("body %q does not contain %q", body, w)
				}
			}
		})
	}
}

// testTimeoutShort is the gateway timeout of tests that wait for it to run
// out; only its expiry matters, never how long it took.
const testTimeoutShort = 300 * time.Millisecond

// randomPeer is the ID of a peer nobody runs.
func randomPeer(t testing.TB) peer.ID {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestCloseWithRequestsInFlight(t *testing.T) {
	a, b := newNode(t), newNode(t)
	started := make(chan struct{}, 1)
	serveWeb(t, b, webProto, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		started <- struct{}{}
		<-r.Context().Done()
	}))
	connect(t, a, b)
	g := startGateway(t, a)
	c := newClient(t)
	resp, err := c.Get(gwURL(t, g, b.h.ID(), webProto, "/"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	<-started
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err == nil {
		t.Fatal("a response in flight ended cleanly when the gateway closed")
	}
	if _, err := c.Get(gwURL(t, g, b.h.ID(), webProto, "/")); err == nil {
		t.Fatal("the gateway answered after Close")
	}
	waitFor(t, "the gateway's streams to end", func() bool { return a.s.Len() == 0 })
}

// TestStreamsResetEndsTheExchange checks that a response's first bytes
// reach the client while the service holds the rest, and that resetting
// the exchange's stream in the registry (`p2pd streams close`) cuts the
// client's response.
func TestStreamsResetEndsTheExchange(t *testing.T) {
	a, b := newNode(t), newNode(t)
	started := make(chan struct{}, 1)
	serveWeb(t, b, webProto, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000000")
		w.Write(make([]byte, 1000))
		http.NewResponseController(w).Flush()
		started <- struct{}{}
		<-r.Context().Done()
	}))
	connect(t, a, b)
	g := startGateway(t, a)
	resp, err := newClient(t).Get(gwURL(t, g, b.h.ID(), webProto, "/"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	<-started
	// What the service sent so far arrives without waiting for the rest.
	if _, err := io.ReadFull(resp.Body, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	ss := a.s.List()
	if len(ss) != 1 {
		t.Fatalf("%d streams during the exchange, want 1: %+v", len(ss), ss)
	}
	if err := a.s.Reset(ss[0].ID); err != nil {
		t.Fatal(err)
	}
	if n, err := io.Copy(io.Discard, resp.Body); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("read %d bytes of an exchange whose stream was reset, error %v; want an unexpected EOF", n, err)
	}
}

func TestHTTP10WithoutHost(t *testing.T) {
	a, b := newNode(t), newNode(t)
	serveWeb(t, b, webProto, echoRequest(a))
	connect(t, a, b)
	g := startGateway(t, a)
	hp := strings.TrimPrefix(baseURL(t, g), "http://")
	conn, err := net.Dial("tcp", hp)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /p2p/%s/x/web/http/old HTTP/1.0\r\n\r\n", b.h.ID())
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s seen
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatalf("status %d: %v", resp.StatusCode, err)
	}
	if s.Path != "/old" || s.Host != hp {
		t.Fatalf("the service saw path %q and Host %q; want /old and the gateway's own %s", s.Path, s.Host, hp)
	}
}
