package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/sync/errgroup"

	"github.com/p2pd/p2pd/api"
	"github.com/p2pd/p2pd/internal/nettest"
)

// gatewayPair starts daemon a with an HTTP gateway (and extra flags) and
// daemon b, and connects a to b.
func gatewayPair(t *testing.T, extra ...string) (a, b *node) {
	t.Helper()
	a = startDaemon(t, append([]string{"--bootstrap", "none", "--dht", "off", "--gateway", "/ip4/127.0.0.1/tcp/0"}, extra...)...)
	b = startDaemon(t, "--bootstrap", "none", "--dht", "off")
	var st api.Status
	if a.mustJSON(&st, "status"); a.gw == "" || st.Gateway != a.gw {
		t.Fatalf("gateway: line %q, status gateway %q; want the same address", a.gw, st.Gateway)
	}
	if r := a.cli("connect", b.addr()); r.code != 0 {
		t.Fatalf("connect: %s", r)
	}
	return a, b
}

// webService starts a real HTTP server on loopback (counting the
// connections it accepts) and makes b serve it under proto.
func webService(t *testing.T, b *node, proto string, h http.Handler, listenArgs ...string) *countedServer {
	t.Helper()
	s := &countedServer{Server: httptest.NewUnstartedServer(h)}
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.accepted.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	args := append([]string{"listen", proto, "/ip4/127.0.0.1/tcp/" + portOf(t, s.Listener.Addr())}, listenArgs...)
	if r := b.cli(args...); r.code != 0 {
		t.Fatalf("listen: %s", r)
	}
	return s
}

// countedServer is an httptest server that counts the connections it
// accepted.
type countedServer struct {
	*httptest.Server
	accepted atomic.Int64
}

func portOf(t testing.TB, a net.Addr) string {
	t.Helper()
	_, p, err := net.SplitHostPort(a.String())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// gwURL is the gateway URL of path on peer's protocol proto through a.
func gwURL(t testing.TB, a *node, peer, proto, path string) string {
	t.Helper()
	return "http://" + hostPort(t, a.gw) + "/p2p/" + peer + proto + "/http" + path
}

// httpClient is Go's HTTP client with a pool of its own, closed at the end
// of the test.
func httpClient(t testing.TB, conns int) *http.Client {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 2 * time.Minute}
}

// TestGatewayLargeBodies sends a 64 MiB response and a 64 MiB upload
// through the gateway, both chunked, comparing SHA-256 at both ends, and
// checks that the exchange shows in `streams` and in events.
func TestGatewayLargeBodies(t *testing.T) {
	a, b := gatewayPair(t)
	uploaded := make(chan string, 1)
	webService(t, b, "/x/web", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			sum, n, err := sha(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			uploaded <- fmt.Sprintf("%s %d", sum, n)
			fmt.Fprintf(w, "%s %d", sum, n)
			return
		}
		io.Copy(w, randomStream(64, big))
	}))
	events := watchEvents(t, a)
	c := httpClient(t, 1)
	url := gwURL(t, a, b.id, "/x/web", "/big")
	wantSum, _, _ := sha(randomStream(64, big))

	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ContentLength != -1 {
		t.Fatalf("status %d, length %d; want 200, chunked", resp.StatusCode, resp.ContentLength)
	}
	// Half way, the exchange is one of a's streams.
	first, err := io.ReadAll(io.LimitReader(resp.Body, big/2))
	if err != nil {
		t.Fatal(err)
	}
	var ss []api.Stream
	a.mustJSON(&ss, "streams")
	if len(ss) != 1 || ss[0].Protocol != "/x/web" || ss[0].Peer != b.id || ss[0].TargetAddress != "/p2p/"+b.id ||
		!strings.HasPrefix(ss[0].OriginAddress, "/ip4/127.0.0.1/tcp/") || ss[0].BytesIn == 0 || ss[0].BytesOut == 0 {
		t.Fatalf("streams during a download: %+v; want one /x/web stream to %s with bytes both ways", ss, b.id)
	}
	gotSum, n, err := sha(io.MultiReader(strings.NewReader(string(first)), resp.Body))
	if err != nil || n != big || gotSum != wantSum {
		t.Fatalf("download: %d bytes hashing %s (err %v); want %d hashing %s", n, gotSum, err, big, wantSum)
	}
	ev := events.next(t, api.EventStreamOpened)
	if ev.Stream == nil || ev.Stream.Protocol != "/x/web" || ev.Peer != b.id {
		t.Fatalf("stream_opened event %+v: want the gateway's /x/web stream to %s", ev, b.id)
	}

	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(copyErr(io.Copy(pw, randomStream(65, big)))) }()
	req, err := http.NewRequest(http.MethodPost, url, pr)
	if err != nil {
		t.Fatal(err)
	}
	resp2, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	answer, _ := io.ReadAll(resp2.Body)
	wantUp, _, _ := sha(randomStream(65, big))
	if want := fmt.Sprintf("%s %d", wantUp, big); string(answer) != want || <-uploaded != want {
		t.Fatalf("upload: the service answered %q, want %q", answer, want)
	}
}

func copyErr(_ int64, err error) error { return err }

// eventWatch reads `p2pd events --json` of a daemon.
type eventWatch struct {
	ch chan api.Event
}

func watchEvents(t *testing.T, n *node) *eventWatch {
	t.Helper()
	cmd := helperlessCommand(n, "events", "--json")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &eventWatch{ch: make(chan api.Event, 1024)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var ev api.Event
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				w.ch <- ev
			}
		}
		close(w.ch)
	}()
	return w
}

// next returns the next event of type typ.
func (w *eventWatch) next(t *testing.T, typ string) api.Event {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		select {
		case ev, ok := <-w.ch:
			if !ok {
				t.Fatalf("the event stream ended before a %s event", typ)
			}
			if ev.Type == typ {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %s event", typ)
		}
	}
}

// TestGatewayConcurrentKeepAlive sends 500 requests from 100 concurrent
// client connections: every answer is right, and each client connection
// to the gateway became exactly one connection to the service (its stream
// was kept between its requests).
func TestGatewayConcurrentKeepAlive(t *testing.T) {
	const clients, each = 100, 5
	a, b := gatewayPair(t)
	svc := webService(t, b, "/x/web", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "answer to %s", r.URL.Query().Get("n"))
	}))
	c := httpClient(t, clients)
	// The client connections that carried requests (a connection the
	// client dialled may carry none: a request that had dialled may take
	// one that became idle first).
	var mu sync.Mutex
	used := map[net.Conn]int{}
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
		mu.Lock()
		used[i.Conn]++
		mu.Unlock()
	}}
	var g errgroup.Group
	for i := range clients {
		g.Go(func() error {
			for j := range each {
				n := fmt.Sprint(i*each + j)
				req, err := http.NewRequest(http.MethodGet, gwURL(t, a, b.id, "/x/web", "/?n="+n), nil)
				if err != nil {
					return err
				}
				resp, err := c.Do(req.WithContext(httptrace.WithClientTrace(req.Context(), trace)))
				if err != nil {
					return err
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK || string(body) != "answer to "+n {
					return fmt.Errorf("request %s: status %d, body %q, err %v", n, resp.StatusCode, body, err)
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if len(used) > clients {
		t.Fatalf("%d client connections carried requests; want at most %d", len(used), clients)
	}
	if got, want := svc.accepted.Load(), int64(len(used)); got != want {
		t.Fatalf("the service accepted %d connections for %d client connections to the gateway; want one each", got, want)
	}
}

// TestGatewayWebSocket echoes WebSocket messages through the gateway.
func TestGatewayWebSocket(t *testing.T) {
	a, b := gatewayPair(t)
	up := websocket.Upgrader{}
	webService(t, b, "/x/ws", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		for {
			typ, msg, err := conn.ReadMessage()
			if err != nil {
				return
			}
			if err := conn.WriteMessage(typ, msg); err != nil {
				return
			}
		}
	}))
	url := "ws" + strings.TrimPrefix(gwURL(t, a, b.id, "/x/ws", "/echo"), "http")
	conn, resp, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("dialling %s: %v (response %+v)", url, err, resp)
	}
	defer conn.Close()
	for i, msg := range [][]byte{[]byte("hello"), make([]byte, 1<<20), []byte("bye")} {
		typ := websocket.TextMessage
		if i == 1 {
			typ = websocket.BinaryMessage
			copy(msg, "binary")
		}
		if err := conn.WriteMessage(typ, msg); err != nil {
			t.Fatal(err)
		}
		gotTyp, got, err := conn.ReadMessage()
		if err != nil || gotTyp != typ || string(got) != string(msg) {
			t.Fatalf("message %d: type %d, %d bytes, err %v; want type %d, %d bytes echoed", i, gotTyp, len(got), err, typ, len(msg))
		}
	}
}

// TestGatewayResponseCutShort checks that a response the service cuts off
// reaches the client as an error, not as a complete body.
func TestGatewayResponseCutShort(t *testing.T) {
	a, b := gatewayPair(t)
	webService(t, b, "/x/cut", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("length") == "known" {
			w.Header().Set("Content-Length", fmt.Sprint(4<<20))
		}
		io.Copy(w, randomStream(1, 1<<20))
		http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler) // the server drops the connection
	}))
	c := httpClient(t, 1)
	for _, length := range []string{"known", "chunked"} {
		resp, err := c.Get(gwURL(t, a, b.id, "/x/cut", "/?length="+length))
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("%s length: read %d bytes of a cut response, error %v; want an unexpected EOF", length, n, err)
		}
	}
}

// TestGatewayErrors checks each of the gateway's own answers.
func TestGatewayErrors(t *testing.T) {
	a, b := gatewayPair(t, "--gateway-timeout", "1s")
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	webService(t, b, "/x/web", ok)
	other := startDaemon(t, "--bootstrap", "none", "--dht", "off")
	webService(t, b, "/x/private", ok, "--allow-peer", other.id)
	if r := b.cli("listen", "/x/down", nettest.RefusingAddr(t).String()); r.code != 0 {
		t.Fatalf("listen: %s", r)
	}
	var stuckOnce sync.Once
	stuck := make(chan struct{})
	webService(t, b, "/x/stuck", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stuck:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { stuckOnce.Do(func() { close(stuck) }) })
	c := httpClient(t, 4)
	base := "http://" + hostPort(t, a.gw)

	tests := []struct {
		name   string
		url    string
		status int
		want   string
	}{
		{"served", gwURL(t, a, b.id, "/x/web", "/"), http.StatusOK, "ok"},
		{"not a gateway path", base + "/index.html", http.StatusBadRequest, "want /p2p/PEER/http/PATH"},
		{"malformed peer id", base + "/p2p/notapeer/x/web/http/", http.StatusBadRequest, `invalid peer ID "notapeer"`},
		{"not served", gwURL(t, a, b.id, "/x/nothing", "/"), http.StatusNotFound, "does not serve /x/nothing"},
		{"refused by --allow-peer", gwURL(t, a, b.id, "/x/private", "/"), http.StatusForbidden, "refused this node for /x/private"},
		{"service down", gwURL(t, a, b.id, "/x/down", "/"), http.StatusBadGateway, "serves /x/down, but its service there is unreachable"},
		{"peer unreachable", gwURL(t, a, other.id, "/x/web", "/"), http.StatusBadGateway, "cannot reach peer " + other.id},
		{"service silent", gwURL(t, a, b.id, "/x/stuck", "/"), http.StatusGatewayTimeout, "did not answer within 1s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { wantAnswer(t, c, tc.url, tc.status, tc.want) })
	}
}

// wantAnswer fetches url and checks the status and that the body contains
// want.
func wantAnswer(t *testing.T, c *http.Client, url string, status int, want string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != status || !strings.Contains(string(body), want) {
		t.Fatalf("GET %s: status %d, body %q; want %d and %q", url, resp.StatusCode, body, status, want)
	}
}

// TestGatewayFlags checks the gateway's flag errors and that it is off by
// default.
func TestGatewayFlags(t *testing.T) {
	n := startDaemon(t, "--bootstrap", "none", "--dht", "off")
	if n.gw != "" {
		t.Fatalf("a daemon without --gateway printed gateway: %s", n.gw)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--gateway", "0.0.0.0:8080"}, `invalid --gateway value "0.0.0.0:8080": gateway address /ip4/0.0.0.0/tcp/8080 is not a loopback address`},
		{[]string{"--gateway", "/ip4/127.0.0.1/udp/1"}, "want /ip4/HOST/tcp/PORT"},
		{[]string{"--gateway", "127.0.0.1:0", "--gateway-timeout", "0s"}, `invalid --gateway-timeout value "0s"`},
	} {
		r := p2pd(t, append([]string{"daemon", "--repo", t.TempDir()}, tc.args...)...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("daemon %v: %s\nwant a failure saying %q", tc.args, r, tc.want)
		}
	}
}

// TestGatewayRendezvousName reaches a peer's web service by the rendezvous
// name it advertises (/p2p/@NAME/...), on a private DHT.
func TestGatewayRendezvousName(t *testing.T) {
	const ns = "e2e-gw-team"
	nodes := network(t, "/e2e-gw-name", 3, map[int][]string{
		1: {"--rendezvous", ns},
		2: {"--gateway", "127.0.0.1:0"},
	})
	b, a := nodes[1], nodes[2]
	webService(t, b, "/x/web", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "served by b")
	}))
	eventually(t, time.Minute, func() error {
		var found []foundPeer
		a.mustJSON(&found, "find", ns, "--timeout", "10s")
		if len(found) == 0 {
			return fmt.Errorf("nobody found advertising %s yet", ns)
		}
		return nil
	})
	c := httpClient(t, 1)
	for _, tc := range []struct {
		url    string
		status int
		want   string
	}{
		{gwURL(t, a, "@"+ns, "/x/web", "/"), http.StatusOK, "served by b"},
		{gwURL(t, a, "@"+ns, "/x/other", "/"), http.StatusNotFound, "no peer advertising @" + ns + " serves /x/other"},
		{gwURL(t, a, "@nobody-"+ns, "/x/web", "/"), http.StatusBadGateway, "no peer advertising @nobody-" + ns + " serves /x/web"},
	} {
		wantAnswer(t, c, tc.url, tc.status, tc.want)
	}
}
