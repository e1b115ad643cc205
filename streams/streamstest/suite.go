package streamstest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"
	"go.uber.org/goleak"

	"github.com/p2pd/p2pd/internal/ends"
	"github.com/p2pd/p2pd/streams"
)

// Run runs the whole suite against registries built with opts (nil: the
// plain bridge). opts is called once per registry.
func Run(t *testing.T, opts func() []streams.Option) {
	RunSome(t, opts)
}

// RunSome runs the tests of the suite named in names (all without names).
func RunSome(t *testing.T, opts func() []streams.Option, names ...string) {
	cfg := Config{Opts: opts}
	for _, tc := range suite {
		if len(names) > 0 && !slices.Contains(names, tc.name) {
			continue
		}
		t.Run(tc.name, func(t *testing.T) { tc.test(t, cfg) })
	}
}

// suite is every test of the suite, by name.
var suite = []struct {
	name string
	test func(*testing.T, Config)
}{
	{"Bulk", testBulk},
	{"HalfClose", testHalfClose},
	{"Concurrent", testConcurrent},
	{"Reset", testReset},
	{"ResetByService", testResetByService},
	{"ResetByClient", testResetByClient},
	{"RemoteHostClosed", testRemoteHostClosed},
	{"ConnManagerProtection", testConnManagerProtection},
	{"Hooks", testHooks},
	{"CloseWhileRunning", testCloseWhileRunning},
	{"ConnWithoutCloseWrite", testConnWithoutCloseWrite},
	{"ResetRace", testResetRace},
	{"FalseEOF", testFalseEOF},
	{"RoundTrips", testRoundTrips},
	{"MessageSizes", testMessageOfSmallBufferSize},
	{"SlowReader", testSlowReader},
	{"IdleStreams", testIdleStreams},
}

// testBulk copies 64 MiB each way at once, with different data per
// direction, and compares SHA-256 on both ends and the byte counters.
func testBulk(t *testing.T, cfg Config) {
	const size = 64 << 20
	got := make(chan [32]byte, 1)
	tun := NewTunnel(t, func(c net.Conn) {
		sendErr := make(chan error, 1)
		go func() { sendErr <- SendAndClose(c.(*net.TCPConn), 2, size) }()
		s, _, err := ReadSum(c)
		if e := <-sendErr; err == nil && e == nil {
			got <- s
		}
	}, cfg)

	c := tun.Dial(t)
	sendErr := make(chan error, 1)
	go func() { sendErr <- SendAndClose(c, 1, size) }()
	recv, n, err := ReadSum(c)
	if err != nil {
		t.Fatalf("client read: %v", err)
	}
	if err := <-sendErr; err != nil {
		t.Fatalf("client: %v", err)
	}
	if n != size || recv != SumOf(2, size) {
		t.Fatalf("client received %d bytes with a different SHA-256 than the service sent", n)
	}
	select {
	case s := <-got:
		if s != SumOf(1, size) {
			t.Fatal("service received data with a different SHA-256 than the client sent")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("service did not finish")
	}

	for _, side := range []struct {
		name  string
		hooks *HookLog
	}{{"A", tun.HooksA}, {"B", tun.HooksB}} {
		ev := side.hooks.Next(t)
		if ev.Err != nil || ev.Info.BytesIn != size || ev.Info.BytesOut != size {
			t.Errorf("%s: OnClose(in=%d out=%d, err=%v), want in=out=%d and nil", side.name, ev.Info.BytesIn, ev.Info.BytesOut, ev.Err, size)
		}
	}
}

// testHalfClose checks that one direction keeps flowing after the other has
// ended, whichever end closes first, with both read paths.
func testHalfClose(t *testing.T, cfg Config) {
	const size = 1 << 20
	tests := []struct {
		name  string
		first string // who half-closes first
	}{
		{"client closes first", "client"},
		{"service closes first", "service"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			svcGot := make(chan [32]byte, 1)
			var service func(net.Conn)
			if tc.first == "client" {
				// Reply only after EOF: the SHA-256 of what came, then 1 MiB.
				service = func(c net.Conn) {
					s, _, err := ReadSum(c)
					if err != nil {
						return
					}
					if _, err := c.Write(s[:]); err != nil {
						return
					}
					_ = SendAndClose(c.(*net.TCPConn), 7, size)
				}
			} else {
				// Speak first and half-close, then read to EOF.
				service = func(c net.Conn) {
					if err := SendAndClose(c.(*net.TCPConn), 7, size); err != nil {
						return
					}
					if s, _, err := ReadSum(c); err == nil {
						svcGot <- s
					}
				}
			}
			tun := NewTunnel(t, service, cfg)
			c := tun.Dial(t)

			if tc.first == "client" {
				if err := SendAndClose(c, 3, size); err != nil {
					t.Fatal(err)
				}
				var echoed [32]byte
				if _, err := io.ReadFull(c, echoed[:]); err != nil {
					t.Fatalf("reading the reply: %v", err)
				}
				if echoed != SumOf(3, size) {
					t.Fatal("service saw different bytes than the client sent")
				}
				s, n, err := ReadSum(c)
				if err != nil || n != size || s != SumOf(7, size) {
					t.Fatalf("reply: %d bytes, err %v, sha match %v", n, err, s == SumOf(7, size))
				}
			} else {
				s, n, err := ReadSum(c) // returns only once the service's EOF came through
				if err != nil || n != size || s != SumOf(7, size) {
					t.Fatalf("service data: %d bytes, err %v, sha match %v", n, err, s == SumOf(7, size))
				}
				if err := SendAndClose(c, 3, size); err != nil {
					t.Fatalf("client after EOF: %v", err)
				}
				select {
				case got := <-svcGot:
					if got != SumOf(3, size) {
						t.Fatal("service saw different bytes than the client sent")
					}
				case <-time.After(20 * time.Second):
					t.Fatal("service did not get the client's data")
				}
			}
			for _, h := range []*HookLog{tun.HooksA, tun.HooksB} {
				if ev := h.Next(t); ev.Err != nil {
					t.Errorf("stream %d ended with %v, want a clean end", ev.Info.ID, ev.Err)
				}
			}
		})
	}
}

// testConcurrent runs 200 connections at once, each echoed and checked.
func testConcurrent(t *testing.T, cfg Config) {
	const conns, size = 200, 32 << 10
	tun := NewTunnel(t, Echo, cfg)
	errs := make(chan error, conns)
	for i := range conns {
		go func() {
			c, err := net.Dial("tcp", tun.Addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			tc := c.(*net.TCPConn)
			sendErr := make(chan error, 1)
			go func() { sendErr <- SendAndClose(tc, uint64(100+i), size) }()
			s, n, err := ReadSum(tc)
			if e := <-sendErr; e != nil {
				errs <- e
				return
			}
			if err != nil {
				errs <- err
				return
			}
			if n != size || s != SumOf(uint64(100+i), size) {
				errs <- errors.New("Echo differs from what was sent")
				return
			}
			errs <- nil
		}()
	}
	for range conns {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	WaitFor(t, "both registries to empty", func() bool { return tun.RegA.Len() == 0 && tun.RegB.Len() == 0 })
	for name, h := range map[string]*HookLog{"A": tun.HooksA, "B": tun.HooksB} {
		opened, closed := h.Snapshot()
		if len(opened) != conns || len(closed) != conns {
			t.Errorf("%s: %d opens and %d closes, want %d each", name, len(opened), len(closed), conns)
		}
		seen := map[uint64]bool{}
		for _, ev := range closed {
			if ev.Err != nil || ev.Info.BytesIn != size || ev.Info.BytesOut != size {
				t.Errorf("%s: stream %d: in=%d out=%d err=%v", name, ev.Info.ID, ev.Info.BytesIn, ev.Info.BytesOut, ev.Err)
			}
			if ev.Info.ID >= conns || seen[ev.Info.ID] {
				t.Errorf("%s: unexpected or repeated ID %d", name, ev.Info.ID)
			}
			seen[ev.Info.ID] = true
		}
	}
}

// PingConn writes msg and reads it back (the service must Echo), proving the
// tunnel is fully set up.
func PingConn(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("ping write: %v", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
		t.Fatalf("ping read: %q, %v", buf, err)
	}
}

// testReset resets a stream by ID: both TCP ends see a reset, the registry
// forgets it, and IDs are not reused.
func testReset(t *testing.T, cfg Config) {
	svcErr := make(chan error, 4)
	tun := NewTunnel(t, func(c net.Conn) {
		_, err := io.Copy(c, c)
		svcErr <- err
	}, cfg)

	c := tun.Dial(t)
	PingConn(t, c, "ping")
	// The client may read the Echo a moment before the bridge counts it.
	WaitFor(t, "the counters", func() bool { i, _ := tun.RegA.Get(0); return i.BytesIn == 4 && i.BytesOut == 4 })
	list := tun.RegA.List()
	if len(list) != 1 {
		t.Fatalf("List has %d entries, want 1", len(list))
	}
	info := list[0]
	if info.ID != 0 || info.Protocol != Proto || info.Peer != tun.B.ID() ||
		!info.Target.Equal(P2PAddr(t, tun.B.ID())) || !info.Origin.Equal(NetAddr(t, c.LocalAddr())) ||
		info.BytesOut != 4 || info.BytesIn != 4 || info.Started.IsZero() {
		t.Fatalf("unexpected streams.Info %+v", info)
	}
	if got, ok := tun.RegA.Get(0); !ok || got.ID != 0 {
		t.Fatalf("Get(0) = %+v, %v", got, ok)
	}

	if err := tun.RegA.Reset(0); err != nil {
		t.Fatalf("Reset(0): %v", err)
	}
	if n := len(tun.RegA.List()); n != 0 {
		t.Fatalf("List has %d entries after Reset, want 0", n)
	}
	if _, ok := tun.RegA.Get(0); ok {
		t.Fatal("Get(0) still finds the reset stream")
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client read after Reset: %v, want ECONNRESET", err)
	}
	select {
	case err := <-svcErr:
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("service saw %v, want ECONNRESET", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("service did not see the reset")
	}
	if ev := tun.HooksA.Next(t); !errors.Is(ev.Err, streams.ErrResetRequested) {
		t.Errorf("A OnClose err = %v, want streams.ErrResetRequested", ev.Err)
	}
	if ev := tun.HooksB.Next(t); !errors.Is(ev.Err, network.ErrReset) {
		t.Errorf("B OnClose err = %v, want a stream reset", ev.Err)
	}
	WaitFor(t, "B to forget the stream", func() bool { return tun.RegB.Len() == 0 })

	for _, tc := range []struct {
		name string
		id   uint64
		want string
	}{
		{"already reset", 0, "resetting stream 0: no such stream"},
		{"never existed", 42, "resetting stream 42: no such stream"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tun.RegA.Reset(tc.id)
			if err == nil || err.Error() != tc.want || !errors.Is(err, streams.ErrNotFound) {
				t.Fatalf("Reset(%d) = %v, want %q", tc.id, err, tc.want)
			}
		})
	}

	c2 := tun.Dial(t)
	PingConn(t, c2, "again")
	if list := tun.RegA.List(); len(list) != 1 || list[0].ID != 1 {
		t.Fatalf("second stream: %+v, want one stream with ID 1", list)
	}
	if n := tun.RegA.ResetAll(); n != 1 {
		t.Fatalf("ResetAll = %d, want 1", n)
	}
	if _, err := c2.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client read after ResetAll: %v, want ECONNRESET", err)
	}
}

// testRemoteHostClosed closes B's host mid-transfer: A's client sees a reset,
// A's registry empties and no goroutine is left.
func testRemoteHostClosed(t *testing.T, cfg Config) {
	ignore := goleak.IgnoreCurrent()
	tun := NewTunnel(t, Endless, cfg)
	c := tun.Dial(t)
	if _, err := io.CopyN(io.Discard, c, 4<<20); err != nil {
		t.Fatalf("reading the first 4 MiB: %v", err)
	}
	if err := tun.B.Close(); err != nil {
		t.Fatalf("closing host B: %v", err)
	}
	_, err := io.Copy(io.Discard, c)
	ev := tun.HooksA.Next(t)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client saw %v, want ECONNRESET (A's bridge ended with %v)", err, ev.Err)
	}
	if ev.Err == nil || ev.Info.BytesIn < 4<<20 {
		t.Errorf("A OnClose: err %v, in=%d; want an error and ≥ 4 MiB", ev.Err, ev.Info.BytesIn)
	}
	if n := tun.RegA.Len(); n != 0 {
		t.Errorf("A still lists %d streams", n)
	}
	tun.Close()
	_ = c.Close()
	goleak.VerifyNone(t, ignore)
}

// testConnManagerProtection checks that a peer is protected while it has at
// least one stream, and unprotected after the last.
func testConnManagerProtection(t *testing.T, cfg Config) {
	tun := NewTunnel(t, Echo, Config{
		Opts:    cfg.Opts,
		Protect: true,
		OptsB:   []streams.Option{streams.WithProtectTag("custom")},
	})
	cmA, cmB := tun.A.ConnManager(), tun.B.ConnManager()
	protectedA := func() bool { return cmA.IsProtected(tun.B.ID(), streams.DefaultProtectTag) }
	protectedB := func() bool { return cmB.IsProtected(tun.A.ID(), "custom") }
	if protectedA() || protectedB() {
		t.Fatal("protected before any stream")
	}

	c1, c2 := tun.Dial(t), tun.Dial(t)
	PingConn(t, c1, "one")
	PingConn(t, c2, "two")
	WaitFor(t, "B to register both", func() bool { return tun.RegB.Len() == 2 })
	if !protectedA() || !protectedB() {
		t.Fatalf("with two streams: protected A=%v B=%v, want both", protectedA(), protectedB())
	}

	endConn := func(c *net.TCPConn) {
		t.Helper()
		if err := c.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, c); err != nil {
			t.Fatal(err)
		}
		_ = c.Close()
	}
	endConn(c1)
	WaitFor(t, "one stream to end", func() bool { return tun.RegA.Len() == 1 && tun.RegB.Len() == 1 })
	if !protectedA() || !protectedB() {
		t.Fatalf("with one stream left: protected A=%v B=%v, want both", protectedA(), protectedB())
	}
	endConn(c2)
	WaitFor(t, "both streams to end", func() bool { return tun.RegA.Len() == 0 && tun.RegB.Len() == 0 })
	if protectedA() || protectedB() {
		t.Fatalf("after the last stream: protected A=%v B=%v, want neither", protectedA(), protectedB())
	}
}

// testHooks checks that OnOpen and OnClose run exactly once per stream, with
// the right direction counters, on both sides.
func testHooks(t *testing.T, cfg Config) {
	const up, down = 100_000, 300_000
	tun := NewTunnel(t, func(c net.Conn) {
		if _, _, err := ReadSum(c); err != nil {
			return
		}
		_ = SendAndClose(c.(*net.TCPConn), 5, down)
	}, cfg)
	c := tun.Dial(t)
	if err := SendAndClose(c, 4, up); err != nil {
		t.Fatal(err)
	}
	if _, n, err := ReadSum(c); err != nil || n != down {
		t.Fatalf("client read %d bytes, err %v", n, err)
	}
	evA, evB := tun.HooksA.Next(t), tun.HooksB.Next(t)
	tun.Close() // nothing may be reported twice, even at Close

	tests := []struct {
		name    string
		hooks   *HookLog
		ev      CloseEvent
		in, out uint64
		target  ma.Multiaddr
	}{
		{"forward side", tun.HooksA, evA, down, up, P2PAddr(t, tun.B.ID())},
		{"listen side", tun.HooksB, evB, up, down, tun.SvcAddr},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opened, closed := tc.hooks.Snapshot()
			if len(opened) != 1 || len(closed) != 1 {
				t.Fatalf("%d OnOpen and %d OnClose calls, want 1 each", len(opened), len(closed))
			}
			if tc.ev.Err != nil {
				t.Errorf("OnClose err = %v, want nil", tc.ev.Err)
			}
			i := tc.ev.Info
			if i.ID != 0 || opened[0].ID != 0 || i.BytesIn != tc.in || i.BytesOut != tc.out {
				t.Errorf("OnClose info: id %d in %d out %d; want id 0 in %d out %d", i.ID, i.BytesIn, i.BytesOut, tc.in, tc.out)
			}
			if opened[0].BytesIn != 0 || opened[0].BytesOut != 0 || i.Protocol != Proto || !i.Target.Equal(tc.target) {
				t.Errorf("OnOpen info %+v / OnClose info %+v", opened[0], i)
			}
		})
	}
	if o := evB.Info.Origin; !o.Equal(P2PAddr(t, tun.A.ID())) {
		t.Errorf("listen side origin %v, want /p2p/<A>", o)
	}
}

// testCloseWhileRunning closes a registry under running transfers: Close
// waits for every bridge, clients see resets, and Bridge is refused after.
func testCloseWhileRunning(t *testing.T, cfg Config) {
	const conns = 5
	tun := NewTunnel(t, Endless, cfg)
	clients := make([]*net.TCPConn, conns)
	for i := range clients {
		clients[i] = tun.Dial(t)
		if _, err := io.CopyN(io.Discard, clients[i], 1<<20); err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
	}
	if err := tun.RegA.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n := tun.RegA.Len(); n != 0 {
		t.Fatalf("%d streams left after Close", n)
	}
	_, closed := tun.HooksA.Snapshot() // complete: Close waited for the hooks
	if len(closed) != conns {
		t.Fatalf("%d OnClose calls after Close, want %d", len(closed), conns)
	}
	for _, ev := range closed {
		if !errors.Is(ev.Err, streams.ErrClosed) {
			t.Errorf("stream %d ended with %v, want streams.ErrClosed", ev.Info.ID, ev.Err)
		}
	}
	for i, c := range clients {
		if _, err := io.Copy(io.Discard, c); !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("client %d saw %v, want ECONNRESET", i, err)
		}
	}
	if err := tun.RegA.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	// Bridge after Close resets the stream and closes the connection itself.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := tun.A.NewStream(ctx, tun.B.ID(), Proto)
	if err != nil {
		t.Fatal(err)
	}
	local, remote := TCPPair(t)
	if _, err := tun.RegA.Bridge(s, local, nil, nil); !errors.Is(err, streams.ErrClosed) || err.Error() != "stream registry is closed" {
		t.Fatalf("Bridge after Close = %v, want %q", err, streams.ErrClosed)
	}
	if _, err := s.Read(make([]byte, 1)); !errors.Is(err, network.ErrReset) {
		t.Errorf("stream read after refused Bridge: %v, want a reset", err)
	}
	if _, err := remote.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("conn read after refused Bridge: %v, want ECONNRESET", err)
	}
}

// TCPPair returns both ends of a loopback TCP connection.
func TCPPair(t testing.TB) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	d, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { _ = d.Close(); _ = r.c.Close() })
	return r.c.(*net.TCPConn), d.(*net.TCPConn)
}

// testConnWithoutCloseWrite bridges a net.Pipe, which cannot half-close: the
// end of the stream data closes the pipe entirely, and the bridge still ends
// cleanly.
func testConnWithoutCloseWrite(t *testing.T, cfg Config) {
	tests := []struct {
		name    string
		service func(net.Conn)
		client  func(net.Conn) error
	}{
		{
			name:    "client closes",
			service: Echo,
			client: func(c net.Conn) error {
				if _, err := c.Write([]byte("hello")); err != nil {
					return err
				}
				buf := make([]byte, 5)
				if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello" {
					return errors.New("no Echo")
				}
				return c.Close()
			},
		},
		{
			name: "service closes",
			service: func(c net.Conn) {
				if _, err := c.Write([]byte("bye")); err != nil {
					return
				}
				_ = c.(*net.TCPConn).CloseWrite()
				_, _ = io.Copy(io.Discard, c)
			},
			client: func(c net.Conn) error {
				b, err := io.ReadAll(c) // EOF: the bridge closed its end of the pipe
				if err != nil || string(b) != "bye" {
					return errors.New("did not get bye then EOF")
				}
				return nil
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tun := NewTunnel(t, tc.service, cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := tun.A.NewStream(ctx, tun.B.ID(), Proto)
			if err != nil {
				t.Fatal(err)
			}
			mine, theirs := net.Pipe()
			defer theirs.Close()
			if _, err := tun.RegA.Bridge(s, mine, nil, nil); err != nil {
				t.Fatal(err)
			}
			if err := tc.client(theirs); err != nil {
				t.Fatal(err)
			}
			if ev := tun.HooksA.Next(t); ev.Err != nil {
				t.Fatalf("bridge ended with %v, want a clean end", ev.Err)
			}
		})
	}
}

// testResetRace resets streams while they end by themselves: each still has
// exactly one teardown and one OnClose.
func testResetRace(t *testing.T, cfg Config) {
	const conns = 50
	tun := NewTunnel(t, Echo, cfg)
	resetErrs := make(chan error, conns)
	for i := range conns {
		c := tun.Dial(t)
		PingConn(t, c, "x")
		id := uint64(i)
		go func() { resetErrs <- tun.RegA.Reset(id) }()
		_ = c.CloseWrite()
	}
	for range conns {
		if err := <-resetErrs; err != nil && !errors.Is(err, streams.ErrNotFound) {
			t.Errorf("Reset: %v", err)
		}
	}
	WaitFor(t, "A to empty", func() bool { return tun.RegA.Len() == 0 })
	tun.Close()
	opened, closed := tun.HooksA.Snapshot()
	if len(opened) != conns || len(closed) != conns {
		t.Fatalf("%d opens, %d closes, want %d each", len(opened), len(closed), conns)
	}
	ids := map[uint64]bool{}
	for _, ev := range closed {
		if ev.Err != nil && !errors.Is(ev.Err, streams.ErrResetRequested) && !errors.Is(ev.Err, network.ErrReset) {
			t.Errorf("stream %d ended with %v", ev.Info.ID, ev.Err)
		}
		if ids[ev.Info.ID] {
			t.Errorf("stream %d closed twice", ev.Info.ID)
		}
		ids[ev.Info.ID] = true
	}
}

// lyingStream returns its first data together with a bare io.EOF, as yamux
// does when its session dies under a read (see confirmPeerEOF).
type lyingStream struct {
	network.Stream
	lied bool
}

func (l *lyingStream) Read(p []byte) (int, error) {
	n, err := l.Stream.Read(p)
	if n > 0 && !l.lied {
		l.lied = true
		return n, io.EOF
	}
	return n, err
}

// testFalseEOF checks that a bare io.EOF that the stream does not confirm is
// a failure (reset), not a half-close.
func testFalseEOF(t *testing.T, cfg Config) {
	svcConn := make(chan net.Conn, 1)
	tun := NewTunnel(t, func(c net.Conn) {
		svcConn <- c
		_, _ = io.Copy(io.Discard, c)
	}, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := tun.A.NewStream(ctx, tun.B.ID(), Proto)
	if err != nil {
		t.Fatal(err)
	}
	local, app := TCPPair(t)
	if _, err := tun.RegA.Bridge(&lyingStream{Stream: s}, local, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := app.Write([]byte("hi")); err != nil { // makes B accept the stream
		t.Fatal(err)
	}
	svc := <-svcConn
	if _, err := svc.Write([]byte("data")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(app, buf); err != nil || string(buf) != "data" {
		t.Fatalf("app read %q, %v", buf, err)
	}
	ends.Abort(svc) // B resets the stream: the confirming read fails
	if _, err := app.Read(buf); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("app read %v, want ECONNRESET", err)
	}
	if ev := tun.HooksA.Next(t); !errors.Is(ev.Err, network.ErrReset) {
		t.Fatalf("bridge ended with %v, want a stream reset", ev.Err)
	}
}

// testRoundTrips sends many small request/response exchanges on one
// connection, so the local direction goes idle and wakes up again each time.
func testRoundTrips(t *testing.T, cfg Config) {
	tun := NewTunnel(t, Echo, cfg)
	c := tun.Dial(t)
	msg := bytes.Repeat([]byte("0123456789"), 100)
	got := make([]byte, len(msg))
	for i := range 300 {
		msg[0] = byte(i)
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("round trip %d: %v, equal %v", i, err, bytes.Equal(got, msg))
		}
	}
	WaitFor(t, "300000 bytes counted out", func() bool {
		i, ok := tun.RegA.Get(0)
		return ok && i.BytesOut == 300*1000 && i.BytesIn == 300*1000
	})
}

// testMessageOfSmallBufferSize sends request/response messages whose sizes
// are around and at the size of the bridge's small read buffer: a message
// that exactly fills it must be passed on at once, not held until more data
// comes.
func testMessageOfSmallBufferSize(t *testing.T, cfg Config) {
	// 512 bytes is the small first read of package fastpath's bridge.
	const small = 512
	for _, size := range []int{small - 1, small, small + 1, 2 * small} {
		t.Run(fmt.Sprintf("%d bytes", size), func(t *testing.T) {
			service := func(c net.Conn) {
				buf := make([]byte, size)
				for {
					if _, err := io.ReadFull(c, buf); err != nil {
						return
					}
					if _, err := c.Write(buf); err != nil {
						return
					}
				}
			}
			tun := NewTunnel(t, service, cfg)
			c := tun.Dial(t)
			msg := bytes.Repeat([]byte{'m'}, size)
			got := make([]byte, size)
			for i := range 3 {
				msg[0] = byte(i)
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := c.Write(msg); err != nil {
					t.Fatal(err)
				}
				if _, err := io.ReadFull(c, got); err != nil {
					t.Fatalf("exchange %d of a %d-byte message: %v", i, size, err)
				}
				if !bytes.Equal(got, msg) {
					t.Fatalf("exchange %d: the answer differs from the message", i)
				}
			}
		})
	}
}
