package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	logging "github.com/ipfs/go-log/v2"

	"github.com/p2pd/p2pd/api"
	"github.com/p2pd/p2pd/internal/nettest"
	"github.com/p2pd/p2pd/version"
)

// fakeDaemon is an HTTP server on loopback TCP that answers API routes the
// way a test wants, and counts requests.
type fakeDaemon struct {
	srv  *httptest.Server
	hits atomic.Int64
}

func newFakeDaemon(t *testing.T, h http.HandlerFunc) *fakeDaemon {
	t.Helper()
	f := &fakeDaemon{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.hits.Add(1)
		h(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// addr is the fake daemon's API multiaddr.
func (f *fakeDaemon) addr() string { return tcpMultiaddr(f.srv.Listener.Addr()) }

func tcpMultiaddr(a net.Addr) string {
	ta := a.(*net.TCPAddr)
	return fmt.Sprintf("/ip4/%s/tcp/%d", ta.IP, ta.Port)
}

// answerID answers every request with an api.ID naming id.
func answerID(id string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(api.ID{ID: id})
	}
}

// brokenDaemon accepts connections, reads the request's head and hangs up
// without answering: the request was sent, no answer came.
type brokenDaemon struct {
	ln      net.Listener
	accepts atomic.Int64
	wg      sync.WaitGroup
}

func newBrokenDaemon(t *testing.T) *brokenDaemon {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &brokenDaemon{ln: ln}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.accepts.Add(1)
			_, _ = http.ReadRequest(bufio.NewReader(c))
			c.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		b.wg.Wait()
	})
	return b
}

func (b *brokenDaemon) addr() string { return tcpMultiaddr(b.ln.Addr()) }

// deadAddr is a loopback address where nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	return tcpMultiaddr(nettest.RefusingAddr(t))
}

func mustClient(t *testing.T, cfg *Config) *defaultClient {
	t.Helper()
	c, err := newDefaultClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"token and token file", Config{Token: "a", TokenFile: "/f"}, "client config sets both Token and TokenFile: set one"},
		{"negative timeout", Config{Timeout: -time.Second}, "client config: negative Timeout -1s"},
		{"negative dial timeout", Config{DialTimeout: -time.Second}, "client config: negative DialTimeout -1s"},
		{"udp api", Config{APIAddr: "/ip4/127.0.0.1/udp/5055"}, `invalid API address "/ip4/127.0.0.1/udp/5055": want /ip4/HOST/tcp/PORT or /unix/PATH`},
		{"api without port", Config{APIAddr: "/ip4/127.0.0.1"}, `invalid API address "/ip4/127.0.0.1": want /ip4/HOST/tcp/PORT or /unix/PATH`},
		{"api with extra part", Config{APIAddr: "/ip4/127.0.0.1/tcp/1/http"}, `invalid API address "/ip4/127.0.0.1/tcp/1/http": want /ip4/HOST/tcp/PORT or /unix/PATH`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewDefaultClient(&tt.cfg)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("NewDefaultClient = %v, want %q", err, tt.want)
			}
			if _, err := NewTransport(&tt.cfg); err == nil || err.Error() != tt.want {
				t.Errorf("NewTransport = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestNewLBClientErrors(t *testing.T) {
	ok := &Config{APIAddr: "/ip4/127.0.0.1/tcp/1", Token: "t"}
	tests := []struct {
		name     string
		strategy LBStrategy
		cfgs     []*Config
		retries  int
		want     string
	}{
		{"unknown strategy", LBStrategy(7), []*Config{ok}, 0, "unknown load-balancing strategy LBStrategy(7)"},
		{"no configs", RoundRobin, nil, 0, "load-balancing client needs at least one daemon config"},
		{"negative retries", Failover, []*Config{ok}, -1, "retries must not be negative, got -1"},
		{"nil config", Failover, []*Config{ok, nil}, 1, "daemon config 1 is nil"},
		{"bad config", Failover, []*Config{{APIAddr: "/ip4/127.0.0.1/udp/1"}}, 1, `daemon config 0: invalid API address "/ip4/127.0.0.1/udp/1": want /ip4/HOST/tcp/PORT or /unix/PATH`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewLBClient(tt.strategy, tt.cfgs, tt.retries)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("NewLBClient = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestParseAPIAddr(t *testing.T) {
	tests := []struct {
		in, network, address string
	}{
		{"/ip4/127.0.0.1/tcp/5055", "tcp", "127.0.0.1:5055"},
		{"/ip6/::1/tcp/5055", "tcp", "[::1]:5055"},
		{"/dns/localhost/tcp/80", "tcp", "localhost:80"},
		{"/unix/tmp/p2pd.sock", "unix", "/tmp/p2pd.sock"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			ep, err := ParseAPIAddr(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if ep.Network != tt.network || ep.Address != tt.address || ep.Multiaddr != tt.in {
				t.Errorf("ParseAPIAddr = %+v, want %s %s", ep, tt.network, tt.address)
			}
		})
	}
}

// TestTransportSetsHeaders checks the bearer and user-agent layers.
func TestTransportSetsHeaders(t *testing.T) {
	var mu sync.Mutex
	var got http.Header
	f := newFakeDaemon(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = r.Header.Clone()
		mu.Unlock()
		answerID("x")(w, r)
	})
	tests := []struct {
		name, ua, wantUA string
	}{
		{"default user agent", "", "p2pd-client/" + version.Version},
		{"own user agent", "orchestrator/1.2", "orchestrator/1.2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustClient(t, &Config{APIAddr: f.addr(), Token: "s3cret", UserAgent: tt.ua})
			if _, err := c.ID(context.Background()); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if a := got.Get("Authorization"); a != "Bearer s3cret" {
				t.Errorf("Authorization = %q, want %q", a, "Bearer s3cret")
			}
			if ua := got.Get("User-Agent"); ua != tt.wantUA {
				t.Errorf("User-Agent = %q, want %q", ua, tt.wantUA)
			}
		})
	}
}

// TestTokenFileRotatedWhileRunning rotates the token of a running (fake)
// daemon and its token file, keeping the file's size and modification time,
// so only the retry on 401 can notice: calls, including one with a body,
// keep working with the same client.
func TestTokenFileRotatedWhileRunning(t *testing.T) {
	var mu sync.Mutex
	valid := strings.Repeat("a", 64)
	var bodies []string
	f := newFakeDaemon(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ok := r.Header.Get("Authorization") == "Bearer "+valid
		mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			_ = json.NewEncoder(w).Encode(api.Error{Message: "wrong API token: use the token from REPO/api.token", Code: api.CodeUnauthorized})
			return
		}
		if r.Body != nil {
			b, _ := io.ReadAll(r.Body)
			mu.Lock()
			bodies = append(bodies, string(b))
			mu.Unlock()
		}
		if r.URL.Path == api.RouteListen {
			_ = json.NewEncoder(w).Encode(api.Listener{Kind: api.KindListen, Protocol: "/x/p"})
			return
		}
		answerID("x")(w, r)
	})
	file := filepath.Join(t.TempDir(), "api.token")
	if err := os.WriteFile(file, []byte(valid+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := mustClient(t, &Config{APIAddr: f.addr(), TokenFile: file})
	ctx := context.Background()
	if _, err := c.ID(ctx); err != nil {
		t.Fatal(err)
	}

	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	valid = strings.Repeat("b", 64)
	mu.Unlock()
	if err := os.WriteFile(file, []byte(valid+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(file, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}

	before := f.hits.Load()
	l, err := c.Listen(ctx, api.ListenRequest{Protocol: "/x/p", Target: "/ip4/127.0.0.1/tcp/9"})
	if err != nil {
		t.Fatalf("Listen after the rotation: %v", err)
	}
	if l.Protocol != "/x/p" {
		t.Errorf("Listen = %+v", l)
	}
	if n := f.hits.Load() - before; n != 2 {
		t.Errorf("the daemon saw %d requests for the call, want 2 (refused, then retried)", n)
	}
	mu.Lock()
	last := bodies[len(bodies)-1]
	mu.Unlock()
	if !strings.Contains(last, `"protocol":"/x/p"`) {
		t.Errorf("the retried request's body was %q, want the listen request", last)
	}
	if _, err := c.ID(ctx); err != nil {
		t.Fatalf("ID after the rotation: %v", err)
	}
}

// TestDebugTransportLogs checks the debug wrapper's fields.
func TestDebugTransportLogs(t *testing.T) {
	f := newFakeDaemon(t, answerID("x"))
	if err := logging.SetLogLevel("p2pd/client", "debug"); err != nil {
		t.Fatal(err)
	}
	defer logging.SetLogLevel("p2pd/client", "error")
	pr := logging.NewPipeReader()
	lines := make(chan map[string]any, 16)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		dec := json.NewDecoder(pr)
		for {
			var m map[string]any
			if err := dec.Decode(&m); err != nil {
				return
			}
			if m["logger"] == "p2pd/client" {
				select {
				case lines <- m:
				default:
				}
			}
		}
	}()
	c := mustClient(t, &Config{APIAddr: f.addr(), Token: "t"})
	_, err := c.ID(context.Background())
	pr.Close()
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	close(lines)
	var found bool
	for m := range lines {
		if m["msg"] != "api request" {
			continue
		}
		found = true
		if m["method"] != "GET" || m["path"] != api.RouteID || m["status"] != float64(200) || m["duration"] == nil {
			t.Errorf("log line %v: want method GET, path %s, status 200 and a duration", m, api.RouteID)
		}
	}
	if !found {
		t.Error("no \"api request\" debug line was logged")
	}
}

func TestUnreachableErrors(t *testing.T) {
	emptyRepo := t.TempDir()
	garbledRepo := t.TempDir()
	if err := os.WriteFile(filepath.Join(garbledRepo, api.APIFile), []byte("/ip4/127.0.0.1/udp/1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dead := deadAddr(t)
	port := dead[strings.LastIndex(dead, "/")+1:]
	tests := []struct {
		name        string
		cfg         Config
		unreachable bool
		want        string
	}{
		{"no daemon for the repo", Config{Repo: emptyRepo}, true,
			fmt.Sprintf("no daemon is running for repo %s (no %s/api file): start one with `p2pd daemon --repo %s`", emptyRepo, emptyRepo, emptyRepo)},
		{"nothing listens", Config{APIAddr: dead, Token: "t"}, true,
			fmt.Sprintf("cannot reach the daemon at %s (dial tcp 127.0.0.1:%s: connect: connection refused): is `p2pd daemon` running?", dead, port)},
		{"garbled api file", Config{Repo: garbledRepo}, false,
			fmt.Sprintf(`%s/api: invalid API address "/ip4/127.0.0.1/udp/1": want /ip4/HOST/tcp/PORT or /unix/PATH`, garbledRepo)},
		{"missing token file", Config{APIAddr: dead, TokenFile: filepath.Join(emptyRepo, "nope")}, false,
			fmt.Sprintf("reading the API token: stat %s/nope: no such file or directory", emptyRepo)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustClient(t, &tt.cfg)
			_, err := c.Streams(context.Background())
			if err == nil {
				t.Fatal("Streams succeeded")
			}
			if errors.Is(err, ErrUnreachable) != tt.unreachable {
				t.Errorf("errors.Is(%v, ErrUnreachable) = %v, want %v", err, !tt.unreachable, tt.unreachable)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n %q\nwant\n %q", err, tt.want)
			}
			var ue *UnreachableError
			if errors.As(err, &ue) && ue.Sent {
				t.Errorf("Sent = true for a request that never left")
			}
		})
	}
}

// TestLBRetryRules checks what the load-balancing client retries.
func TestLBRetryRules(t *testing.T) {
	ctx := context.Background()
	okListen := func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == api.RouteListen {
			_ = json.NewEncoder(w).Encode(api.Listener{Kind: api.KindListen})
			return
		}
		answerID("ok")(w, r)
	}
	lb := func(t *testing.T, s LBStrategy, retries int, addrs ...string) *lbClient {
		t.Helper()
		var cfgs []*Config
		for _, a := range addrs {
			cfgs = append(cfgs, &Config{APIAddr: a, Token: "t"})
		}
		c, err := NewLBClient(s, cfgs, retries)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.CloseIdleConnections)
		return c.(*lbClient)
	}

	t.Run("a read moves on after the connection broke", func(t *testing.T) {
		broken, ok := newBrokenDaemon(t), newFakeDaemon(t, okListen)
		c := lb(t, Failover, 1, broken.addr(), ok.addr())
		id, err := c.ID(ctx)
		if err != nil || id.ID != "ok" {
			t.Fatalf("ID = %+v, %v; want the second daemon's answer", id, err)
		}
	})
	t.Run("a change is not sent twice", func(t *testing.T) {
		broken, ok := newBrokenDaemon(t), newFakeDaemon(t, okListen)
		c := lb(t, Failover, 1, broken.addr(), ok.addr())
		_, err := c.Listen(ctx, api.ListenRequest{Protocol: "/x/p", Target: "/ip4/127.0.0.1/tcp/9"})
		var ue *UnreachableError
		if !errors.As(err, &ue) || !ue.Sent {
			t.Fatalf("Listen = %v, want an *UnreachableError with Sent true", err)
		}
		if n := ok.hits.Load(); n != 0 {
			t.Errorf("the second daemon got %d requests, want 0", n)
		}
	})
	t.Run("a change that never left moves on", func(t *testing.T) {
		ok := newFakeDaemon(t, okListen)
		c := lb(t, Failover, 1, deadAddr(t), ok.addr())
		if _, err := c.Listen(ctx, api.ListenRequest{Protocol: "/x/p", Target: "/ip4/127.0.0.1/tcp/9"}); err != nil {
			t.Fatalf("Listen = %v, want the second daemon's answer", err)
		}
	})
	t.Run("an error answer is not retried", func(t *testing.T) {
		refusing := newFakeDaemon(t, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(api.Error{Message: "no", Code: api.CodeBadRequest})
		})
		ok := newFakeDaemon(t, okListen)
		c := lb(t, RoundRobin, 2, refusing.addr(), ok.addr())
		if _, err := c.ID(ctx); !errors.Is(err, ErrBadRequest) || err.Error() != "no" {
			t.Fatalf("ID = %v, want the first daemon's refusal", err)
		}
		if n := ok.hits.Load(); n != 0 {
			t.Errorf("the second daemon got %d requests, want 0", n)
		}
	})
	t.Run("retries counts attempts after the first", func(t *testing.T) {
		bs := []*brokenDaemon{newBrokenDaemon(t), newBrokenDaemon(t), newBrokenDaemon(t)}
		c := lb(t, Failover, 4, bs[0].addr(), bs[1].addr(), bs[2].addr())
		_, err := c.ID(ctx)
		want := fmt.Sprintf("no daemon answered in 5 attempts; the last one: lost the daemon at %s: EOF", bs[1].addr())
		if err == nil || err.Error() != want {
			t.Fatalf("ID = %v, want %q", err, want)
		}
		if !errors.Is(err, ErrUnreachable) {
			t.Errorf("%v does not match ErrUnreachable", err)
		}
		for i, want := range []int64{2, 2, 1} {
			if n := bs[i].accepts.Load(); n != want {
				t.Errorf("daemon %d was tried %d times, want %d", i, n, want)
			}
		}
	})
	t.Run("failed daemons are tried last", func(t *testing.T) {
		broken := newBrokenDaemon(t)
		ok1, ok2 := newFakeDaemon(t, answerID("1")), newFakeDaemon(t, answerID("2"))
		c := lb(t, RoundRobin, 2, broken.addr(), ok1.addr(), ok2.addr())
		c.backoffMin = time.Hour // no expiry during the test
		for i := 0; i < 9; i++ {
			if _, err := c.ID(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if n := broken.accepts.Load(); n != 1 {
			t.Errorf("the broken daemon was tried %d times, want once", n)
		}
		if ok1.hits.Load()+ok2.hits.Load() != 9 || ok1.hits.Load() == 0 || ok2.hits.Load() == 0 {
			t.Errorf("the healthy daemons answered %d and %d calls, want 9 shared", ok1.hits.Load(), ok2.hits.Load())
		}
	})
	t.Run("failover sticks to the daemon that answered", func(t *testing.T) {
		ok1, ok2 := newFakeDaemon(t, answerID("1")), newFakeDaemon(t, answerID("2"))
		c := lb(t, Failover, 2, deadAddr(t), ok1.addr(), ok2.addr())
		for i := 0; i < 5; i++ {
			if id, err := c.ID(ctx); err != nil || id.ID != "1" {
				t.Fatalf("call %d: ID = %+v, %v; want daemon 1", i, id, err)
			}
		}
		if ok2.hits.Load() != 0 {
			t.Errorf("daemon 2 got %d calls, want 0", ok2.hits.Load())
		}
	})
}

// TestEventStreamEnds checks how an event stream ends: the daemon closing
// it, the caller's context, and Close.
func TestEventStreamEnds(t *testing.T) {
	release := make(chan struct{})
	f := newFakeDaemon(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		_ = json.NewEncoder(w).Encode(api.Event{Seq: 1, Type: api.EventPeerConnected, Peer: "p"})
		w.(http.Flusher).Flush()
		if r.URL.Query().Get("hold") != "" {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}
	})
	t.Cleanup(func() { close(release) })
	c := mustClient(t, &Config{APIAddr: f.addr(), Token: "t"})

	t.Run("the daemon ends it", func(t *testing.T) {
		es, err := c.Events(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer es.Close()
		if ev, err := es.Next(); err != nil || ev.Peer != "p" {
			t.Fatalf("Next = %+v, %v", ev, err)
		}
		_, err = es.Next()
		want := fmt.Sprintf("lost the daemon at %s: the daemon ended the event stream", f.addr())
		if !errors.Is(err, ErrUnreachable) || err.Error() != want {
			t.Fatalf("Next at the end = %v, want %q", err, want)
		}
		if _, err2 := es.Next(); err2 != err {
			t.Errorf("Next after the end = %v, want the same error again", err2)
		}
	})
	hold := func(t *testing.T, ctx context.Context) *EventStream {
		t.Helper()
		// The fake daemon holds the stream open when asked to.
		rctx, cancel := context.WithCancelCause(ctx)
		resp, ep, err := c.send(rctx, http.MethodGet, api.RouteEvents+"?hold=1", nil)
		if err != nil {
			cancel(nil)
			t.Fatal(err)
		}
		sc := bufio.NewScanner(resp.Body)
		return &EventStream{daemon: ep.Multiaddr, cancel: cancel, cause: func() error { return context.Cause(rctx) }, body: resp.Body, sc: sc}
	}
	t.Run("the caller's context ends it", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		es := hold(t, ctx)
		defer es.Close()
		if _, err := es.Next(); err != nil {
			t.Fatal(err)
		}
		cancel()
		if _, err := es.Next(); !errors.Is(err, context.Canceled) {
			t.Fatalf("Next after cancel = %v, want context.Canceled", err)
		}
	})
	t.Run("Close ends it", func(t *testing.T) {
		es := hold(t, context.Background())
		if _, err := es.Next(); err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 1)
		go func() {
			_, err := es.Next()
			errc <- err
		}()
		es.Close()
		es.Close()
		if err := <-errc; !errors.Is(err, io.EOF) {
			t.Fatalf("Next during Close = %v, want io.EOF", err)
		}
	})
}
