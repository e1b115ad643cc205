package daemon

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	logging "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/p2pd/p2pd/api"
	"github.com/p2pd/p2pd/client"
	"github.com/p2pd/p2pd/listeners"
	"github.com/p2pd/p2pd/repo"
)

// world is two daemons with a working tunnel between them: d2 forwards
// /x/echo to d1, which serves it with a local echo service. Tests throw bad
// input at d2 and then check that the tunnel and the API still work.
type world struct {
	d1, d2  *Daemon
	r2      *repo.Repo
	tok     string
	url     string // d2's API, http://127.0.0.1:PORT
	forward string // d2's forward, HOST:PORT
}

func newWorld(t *testing.T, opts ...Option) *world {
	t.Helper()
	echo := echoServer(t)
	d1 := start(t, newRepo(t))
	r2 := newRepo(t)
	d2 := start(t, r2, opts...)
	ctx := context.Background()
	if _, err := d1.listeners.Listen(ctx, listenReq("/x/echo", "/ip4/127.0.0.1/tcp/"+portOf(echo))); err != nil {
		t.Fatal(err)
	}
	target := d1.Host().Addrs()[0].String() + "/p2p/" + d1.Host().ID().String()
	info, err := d2.listeners.Forward(ctx, forwardReq("/x/echo", "/ip4/127.0.0.1/tcp/0", target))
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := r2.Token()
	w := &world{d1: d1, d2: d2, r2: r2, tok: tok, url: apiURL(d2), forward: hostPort(info.ListenAddr)}
	w.check(t)
	return w
}

// check asserts that d2's API answers and that the tunnel carries 64 KiB
// both ways byte for byte.
func (w *world) check(t *testing.T) {
	t.Helper()
	c, err := client.NewDefaultClient(&client.Config{Repo: w.r2.Path()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.ID(ctx); err != nil {
		t.Fatalf("the daemon no longer answers: %v", err)
	}
	ls, err := c.Listeners(ctx)
	if err != nil || len(ls) != 1 || ls[0].Protocol != "/x/echo" {
		t.Fatalf("listeners after bad input: %+v %v", ls, err)
	}
	conn, err := net.Dial("tcp", w.forward)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Minute))
	data := make([]byte, 64<<10)
	rand.Read(data)
	go func() {
		conn.Write(data)
		conn.(*net.TCPConn).CloseWrite()
	}()
	back, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("reading through the tunnel: %v", err)
	}
	if sha256.Sum256(back) != sha256.Sum256(data) {
		t.Fatalf("tunnel returned %d bytes that differ from the %d sent", len(back), len(data))
	}
}

// do sends one raw request to d2's API with the token and returns the
// status and the decoded error body (zero for a 2xx).
func (w *world) do(t *testing.T, method, path string, body []byte) (int, api.Error) {
	t.Helper()
	req, _ := http.NewRequest(method, w.url+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+w.tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e api.Error
	if resp.StatusCode >= 300 {
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
			t.Fatalf("%s %s: %d answer is not the JSON error shape: %v", method, path, resp.StatusCode, err)
		}
	}
	return resp.StatusCode, e
}

func listenReq(proto, target string) listeners.ListenRequest {
	return listeners.ListenRequest{Protocol: protocol.ID(proto), Target: ma.StringCast(target)}
}

func forwardReq(proto, listen, target string) listeners.ForwardRequest {
	return listeners.ForwardRequest{Protocol: protocol.ID(proto), Listen: ma.StringCast(listen), Target: ma.StringCast(target)}
}

func apiURL(d *Daemon) string {
	return "http://" + strings.Replace(strings.TrimPrefix(d.APIAddr(), "/ip4/"), "/tcp/", ":", 1)
}

func hostPort(a ma.Multiaddr) string {
	ip, _ := a.ValueForProtocol(ma.P_IP4)
	port, _ := a.ValueForProtocol(ma.P_TCP)
	return net.JoinHostPort(ip, port)
}

func portOf(ln net.Listener) string {
	return fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
}

// echoServer is a local TCP service that sends back what it receives.
func echoServer(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
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
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return ln
}

// rawRequest writes req on a new connection to d's API and returns the
// parsed answer.
func rawRequest(t *testing.T, d *Daemon, req string) (*http.Response, api.Error) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(apiURL(d), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e api.Error
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &e); err != nil || e.Code == "" || e.Message == "" {
		t.Fatalf("answer %d %q is not the JSON error shape (%v)", resp.StatusCode, b, err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("answer %d has Content-Type %q", resp.StatusCode, ct)
	}
	return resp, e
}

// TestTrailingDataAndInvalidUTF8Refused is item 10 of issue 11.
func TestTrailingDataAndInvalidUTF8Refused(t *testing.T) {
	w := newWorld(t)
	for _, tt := range []struct {
		name, path string
		body       []byte
		want       string
	}{
		{"trailing object", api.RouteClose, []byte(`{"protocol":"/x/nope"}{"all":true}`), "unexpected data after the JSON value at offset 22"},
		{"trailing garbage", api.RouteClose, []byte(`{"all":true} x`), "unexpected data after the JSON value"},
		{"invalid utf-8", api.RouteClose, []byte("{\"protocol\":\"/x/\xff\xfe\"}"), "not valid UTF-8 (first bad byte at offset 16)"},
		{"empty body", api.RouteClose, nil, "empty, want a JSON object"},
		{"wrong type", api.RouteClose, []byte(`{"all":"yes"}`), `field "all" must be true or false, got a JSON string`},
		{"too large", api.RouteClose, append(append([]byte(`{"protocol":"`), bytes.Repeat([]byte("a"), apiMaxBodyBytes)...), `"}`...), "larger than 1048576 bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, e := w.do(t, "POST", tt.path, tt.body)
			if status != 400 || e.Code != api.CodeBadRequest || !strings.Contains(e.Message, tt.want) {
				t.Fatalf("got %d %+v, want 400 with %q", status, e, tt.want)
			}
			w.check(t)
		})
	}
	// A GET with a body is refused: the body would otherwise be read after
	// the answer, with no deadline.
	if status, e := w.do(t, "GET", api.RouteListeners, []byte("x")); status != 400 || !strings.Contains(e.Message, "takes no request body") {
		t.Fatalf("GET with a body: %d %+v", status, e)
	}
	w.check(t)
}

// TestLibraryErrorsUseJSONShape is item 13 of issue 11: the answers
// net/http writes by itself carry the API's JSON error shape.
func TestLibraryErrorsUseJSONShape(t *testing.T) {
	w := newWorld(t)
	huge := strings.Repeat("a", apiMaxHeaderBytes+4096)
	for _, tt := range []struct {
		name, req string
		status    int
		want      string
	}{
		{"headers too large", "GET /api/v1/id HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + huge + "\r\n\r\n", 431, "request headers too large"},
		{"malformed", "GET /api/v1/id HTTP/1.1\r\nHost 127.0.0.1\r\n\r\n", 400, "malformed HTTP request"},
		{"no host", "GET /api/v1/id HTTP/1.1\r\n\r\n", 400, "missing required Host header"},
		{"bad version", "GET /api/v1/id HTTP/2.5\r\nHost: 127.0.0.1\r\n\r\n", 505, "HTTP version not supported"},
		{"bad transfer encoding", "POST /api/v1/connect HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "unsupported transfer encoding"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, e := rawRequest(t, w.d2, tt.req)
			if resp.StatusCode != tt.status || e.Code != api.CodeBadRequest || !strings.Contains(e.Message, tt.want) {
				t.Fatalf("got %d %+v, want %d with %q", resp.StatusCode, e, tt.status, tt.want)
			}
			w.check(t)
		})
	}
}

// TestSlowClientsCannotHoldTheAPI is item 9 of issue 11: 100 connections
// that send half a request neither block the API nor stay open past the
// connection cap, and a refused client's body is never waited for.
func TestSlowClientsCannotHoldTheAPI(t *testing.T) {
	const limit = 16
	w := newWorld(t, func(c *config) error { c.maxAPIConns = limit; return nil })
	addr := strings.TrimPrefix(w.url, "http://")

	var closed sync.WaitGroup
	var mu sync.Mutex
	nclosed := 0
	conns := make([]net.Conn, 0, 100)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
		closed.Wait()
	}()
	for i := range 100 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		half := "POST /api/v1/listen HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le"
		if i%2 == 1 { // headers done, no token, body promised but never sent
			half = "POST /api/v1/listen HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n{\"proto"
		}
		if _, err := io.WriteString(c, half); err != nil {
			t.Fatal(err)
		}
		closed.Add(1)
		go func() {
			defer closed.Done()
			io.Copy(io.Discard, c) // returns when the daemon closes it
			mu.Lock()
			nclosed++
			mu.Unlock()
		}()
	}
	// The daemon answers, and the tunnel works.
	w.check(t)
	// At most limit connections are held: the rest were closed by the
	// daemon (the unauthenticated ones with a body at once, after a 401;
	// the others evicted to make room). The bound below is no timing
	// threshold: without the fix the body-less ones are held forever.
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		n := nclosed
		mu.Unlock()
		if n >= 100-limit {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon still holds %d of 100 half-request connections, want at most %d", 100-n, limit)
		}
	}
	if n := w.d2.apiConns.count(); n > limit {
		t.Fatalf("the daemon counts %d open API connections, over its cap of %d", n, limit)
	}
	w.check(t)
}

// TestAPIUnixPathRemovesOnlyStaleSocket is item 7 of issue 11: --api
// /unix/PATH replaces a stale socket, refuses a live one and anything that
// is not a socket, and at shutdown removes only its own socket.
func TestAPIUnixPathRemovesOnlyStaleSocket(t *testing.T) {
	dir := t.TempDir()
	startUnix := func(path string) (*Daemon, error) {
		d, err := New(newRepo(t), ListenAddrs(ma.StringCast("/ip4/127.0.0.1/tcp/0")),
			APIAddr(ma.StringCast("/unix"+path)), Bootstrap(), DHT("off", "/x"), MDNS(false))
		if err != nil {
			t.Fatal(err)
		}
		err = d.Start(context.Background())
		t.Cleanup(func() { d.Close() })
		return d, err
	}

	// A regular file, a directory and a symbolic link are never touched.
	file := dir + "/file"
	os.WriteFile(file, []byte("precious"), 0o600)
	sub := dir + "/sub"
	os.Mkdir(sub, 0o700)
	link := dir + "/link"
	os.Symlink(file, link)
	for path, kind := range map[string]string{file: "a regular file", sub: "a directory", link: "a symbolic link"} {
		_, err := startUnix(path)
		want := "the path exists and is not a socket (" + kind + "): refusing to replace it"
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: got %v, want %q", path, err, want)
		}
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "precious" {
		t.Fatalf("the file at the API path was changed: %q %v", b, err)
	}
	if st, err := os.Stat(sub); err != nil || !st.IsDir() {
		t.Fatalf("the directory at the API path is gone: %v", err)
	}

	// A live socket is refused; a stale one is replaced.
	live := dir + "/live.sock"
	ln, err := net.Listen("unix", live)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := startUnix(live); err == nil || !strings.Contains(err.Error(), "a daemon already answers there") {
		t.Fatalf("live socket: got %v", err)
	}
	stale := dir + "/stale.sock"
	sl, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	sl.(*net.UnixListener).SetUnlinkOnClose(false)
	sl.Close()
	d, err := startUnix(stale)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	// At shutdown a file that took the socket's place stays.
	os.Remove(stale)
	os.WriteFile(stale, []byte("someone else's"), 0o600)
	d.Close()
	if b, err := os.ReadFile(stale); err != nil || string(b) != "someone else's" {
		t.Fatalf("shutdown removed a file that is not its socket: %q %v", b, err)
	}
	// Its own socket it removes.
	own := dir + "/own.sock"
	d, err = startUnix(own)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	if _, err := os.Lstat(own); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("own socket left after shutdown: %v", err)
	}
}

// TestAPINonLoopbackNeedsAllowRemote is item 8 of issue 11.
func TestAPINonLoopbackNeedsAllowRemote(t *testing.T) {
	for _, addr := range []string{"/ip4/0.0.0.0/tcp/0", "/ip6/::/tcp/0", "/ip4/192.0.2.1/tcp/5055"} {
		_, err := New(newRepo(t), APIAddr(ma.StringCast(addr)))
		want := "API address " + addr + " is not a loopback address"
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "--api-allow-remote") {
			t.Fatalf("%s: got %v, want %q", addr, err, want)
		}
	}
	for _, addr := range []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.2/tcp/0", "/ip6/::1/tcp/0", "/unix/x.sock"} {
		if _, err := New(newRepo(t), APIAddr(ma.StringCast(addr))); err != nil {
			t.Fatalf("%s refused: %v", addr, err)
		}
	}
	// Allowed, it serves on all addresses, with a warning.
	if err := logging.SetLogLevel("p2pd/daemon", "warn"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logging.SetLogLevel("p2pd/daemon", logging.GetConfig().Level.String()) })
	logs := watchLogs(t, logging.LevelWarn)
	r := newRepo(t)
	d := start(t, r, APIAddr(ma.StringCast("/ip4/0.0.0.0/tcp/0")), APIAllowRemote(true))
	if !strings.HasPrefix(d.APIAddr(), "/ip4/0.0.0.0/tcp/") {
		t.Fatalf("api address %s", d.APIAddr())
	}
	logs.wait(t, "the control API listens on a non-loopback address", "crosses the network in clear")
}

// logWatch collects the log lines of every logger from its creation on.
type logWatch struct{ lines chan string }

func watchLogs(t *testing.T, level logging.LogLevel) *logWatch {
	pr := logging.NewPipeReader(logging.PipeLevel(level))
	w := &logWatch{lines: make(chan string, 1000)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(w.lines)
		sc := bufio.NewScanner(pr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			select {
			case w.lines <- sc.Text():
			default: // full: a test waits for early lines
			}
		}
	}()
	t.Cleanup(func() { pr.Close(); <-done })
	return w
}

// wait returns once a line containing every part has been logged.
func (w *logWatch) wait(t *testing.T, parts ...string) {
	t.Helper()
	guard := time.After(2 * time.Minute) // against a hang, not a timing check
	for {
		select {
		case line, ok := <-w.lines:
			if !ok {
				t.Fatalf("no log line with %q", parts)
			}
			all := true
			for _, p := range parts {
				all = all && strings.Contains(line, p)
			}
			if all {
				return
			}
		case <-guard:
			t.Fatalf("no log line with %q", parts)
		}
	}
}

// TestProtocolNamesValidated is item 11 of issue 11: white space, control
// characters and names over libp2p's 1,024-byte limit are refused naming
// the rule, and a name with a newline never reaches the listener list.
func TestProtocolNamesValidated(t *testing.T) {
	w := newWorld(t)
	target := w.d1.Host().ID().String()
	for _, tt := range []struct{ name, proto, want string }{
		{"newline", "/x/a\n/x/b", `invalid protocol name: it contains white space ('\n' at byte 4)`},
		{"space", "/x/a b", `invalid protocol name: it contains white space (' ' at byte 4)`},
		{"tab", "/x/a\tb", `white space ('\t' at byte 4)`},
		{"nul", "/x/a\x00", `control or non-printable character ('\x00' at byte 4)`},
		{"escape", "/x/\x1b[31m", `control or non-printable character ('\x1b' at byte 3)`},
		{"line separator", "/x/a\u2028", `white space ('\u2028' at byte 4)`},
		{"10 KiB", "/x/" + strings.Repeat("a", 10<<10), "it is 10243 bytes long, the limit is 1024 bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, req := range []struct{ path, body string }{
				{api.RouteListen, mustJSON(api.ListenRequest{Protocol: tt.proto, Target: "/ip4/127.0.0.1/tcp/9"})},
				{api.RouteForward, mustJSON(api.ForwardRequest{Protocol: tt.proto, Listen: "/ip4/127.0.0.1/tcp/0", Target: "/p2p/" + target})},
			} {
				status, e := w.do(t, "POST", req.path, []byte(req.body))
				if status != 400 || e.Code != api.CodeBadRequest || !strings.Contains(e.Message, tt.want) {
					t.Fatalf("%s: got %d %+v, want 400 with %q", req.path, status, e, tt.want)
				}
			}
			w.check(t) // also: the listener list still holds exactly the echo forward
		})
	}
	// The longest allowed name works.
	long := "/x/" + strings.Repeat("a", 1024-3)
	if status, e := w.do(t, "POST", api.RouteListen, []byte(mustJSON(api.ListenRequest{Protocol: long, Target: "/ip4/127.0.0.1/tcp/9"}))); status != 200 {
		t.Fatalf("a 1024-byte name: %d %+v", status, e)
	}
}

// TestForwardBindErrorsAreTheUsers is item 12 of issue 11: a forward whose
// local address cannot be bound is 409/400 naming the address, not 500.
func TestForwardBindErrorsAreTheUsers(t *testing.T) {
	w := newWorld(t)
	target := "/p2p/" + w.d1.Host().ID().String()
	held, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	heldAddr := "/ip4/127.0.0.1/tcp/" + portOf(held)
	dir := t.TempDir()
	os.WriteFile(dir+"/file", nil, 0o600)
	for _, tt := range []struct {
		name, listen string
		status       int
		code, want   string
	}{
		{"port in use", heldAddr, 409, api.CodeConflict, "address " + heldAddr + " is already in use"},
		{"the tunnel's own port", "/ip4/127.0.0.1/tcp/" + strings.Split(w.forward, ":")[1], 409, api.CodeConflict, "is already in use"},
		{"unix path taken", "/unix" + dir + "/file", 409, api.CodeConflict, "address /unix" + dir + "/file is already in use"},
		{"unix path in a missing directory", "/unix" + dir + "/nope/s.sock", 400, api.CodeBadRequest, "directory " + dir + "/nope does not exist"},
		{"not a local address", "/ip4/192.0.2.1/tcp/0", 400, api.CodeBadRequest, "not an address of this machine"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body := mustJSON(api.ForwardRequest{Protocol: "/x/echo", Listen: tt.listen, Target: target})
			status, e := w.do(t, "POST", api.RouteForward, []byte(body))
			if status != tt.status || e.Code != tt.code || !strings.Contains(e.Message, tt.want) {
				t.Fatalf("got %d %+v, want %d %s with %q", status, e, tt.status, tt.code, tt.want)
			}
			w.check(t)
		})
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// TestRotatedUnsafeTokenFailsClosed is item 14 of issue 11: a token file
// rotated with unsafe permissions is refused, the previous token stops
// working too, the reason is logged, and fixing the mode restores access.
func TestRotatedUnsafeTokenFailsClosed(t *testing.T) {
	logs := watchLogs(t, logging.LevelError)
	w := newWorld(t)
	old := w.tok
	newTok := strings.Repeat("cd", 32)
	path := w.r2.File(repo.TokenFile)
	if err := os.WriteFile(path+".new", []byte(newTok+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{old, newTok} {
		w.tok = tok
		status, e := w.do(t, "GET", api.RouteID, nil)
		if status != 401 || e.Code != api.CodeUnauthorized || !strings.Contains(e.Message, "has mode 0644, want 0600") ||
			!strings.Contains(e.Message, "no token is accepted until it is fixed") {
			t.Fatalf("token %.8s… after an unsafe rotation: %d %+v, want 401 naming the mode", tok, status, e)
		}
	}
	logs.wait(t, "api token file changed and cannot be used", "has mode 0644")
	// The tunnel is not the API's: it keeps working.
	conn, err := net.Dial("tcp", w.forward)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()

	// Fixed, the new token works and the old one stays refused.
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	w.tok = old
	if status, e := w.do(t, "GET", api.RouteID, nil); status != 401 || !strings.Contains(e.Message, "wrong API token") {
		t.Fatalf("old token after the fix: %d %+v", status, e)
	}
	w.tok = newTok
	if status, e := w.do(t, "GET", api.RouteID, nil); status != 200 {
		t.Fatalf("new token after the fix: %d %+v", status, e)
	}
	w.check(t)

	// A removed token file also fails closed.
	os.Remove(path)
	if status, e := w.do(t, "GET", api.RouteID, nil); status != 401 || !strings.Contains(e.Message, "no token is accepted") {
		t.Fatalf("after removing the token file: %d %+v", status, e)
	}
}
