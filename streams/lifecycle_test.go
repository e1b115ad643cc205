package streams

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"
)

// TestHooks checks that OnOpen and OnClose run exactly once per stream, with
// the right direction counters, on both sides.
func TestHooks(t *testing.T) {
	const up, down = 100_000, 300_000
	tun := newTunnel(t, func(c net.Conn) {
		if _, _, err := readSum(c); err != nil {
			return
		}
		_ = sendAndClose(c.(*net.TCPConn), 5, down)
	}, tunnelConfig{})
	c := tun.dial(t)
	if err := sendAndClose(c, 4, up); err != nil {
		t.Fatal(err)
	}
	if _, n, err := readSum(c); err != nil || n != down {
		t.Fatalf("client read %d bytes, err %v", n, err)
	}
	evA, evB := tun.hooksA.next(t), tun.hooksB.next(t)
	tun.close() // nothing may be reported twice, even at Close

	tests := []struct {
		name    string
		hooks   *hookLog
		ev      closeEvent
		in, out uint64
		target  ma.Multiaddr
	}{
		{"forward side", tun.hooksA, evA, down, up, p2pAddr(t, tun.b.ID())},
		{"listen side", tun.hooksB, evB, up, down, tun.svcAddr},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opened, closed := tc.hooks.snapshot()
			if len(opened) != 1 || len(closed) != 1 {
				t.Fatalf("%d OnOpen and %d OnClose calls, want 1 each", len(opened), len(closed))
			}
			if tc.ev.err != nil {
				t.Errorf("OnClose err = %v, want nil", tc.ev.err)
			}
			i := tc.ev.info
			if i.ID != 0 || opened[0].ID != 0 || i.BytesIn != tc.in || i.BytesOut != tc.out {
				t.Errorf("OnClose info: id %d in %d out %d; want id 0 in %d out %d", i.ID, i.BytesIn, i.BytesOut, tc.in, tc.out)
			}
			if opened[0].BytesIn != 0 || opened[0].BytesOut != 0 || i.Protocol != testProto || !i.Target.Equal(tc.target) {
				t.Errorf("OnOpen info %+v / OnClose info %+v", opened[0], i)
			}
		})
	}
	if o := evB.info.Origin; !o.Equal(p2pAddr(t, tun.a.ID())) {
		t.Errorf("listen side origin %v, want /p2p/<A>", o)
	}
}

// TestCloseWhileRunning closes a registry under running transfers: Close
// waits for every bridge, clients see resets, and Bridge is refused after.
func TestCloseWhileRunning(t *testing.T) {
	const conns = 5
	tun := newTunnel(t, endless, tunnelConfig{})
	clients := make([]*net.TCPConn, conns)
	for i := range clients {
		clients[i] = tun.dial(t)
		if _, err := io.CopyN(io.Discard, clients[i], 1<<20); err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
	}
	if err := tun.regA.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n := tun.regA.Len(); n != 0 {
		t.Fatalf("%d streams left after Close", n)
	}
	_, closed := tun.hooksA.snapshot() // complete: Close waited for the hooks
	if len(closed) != conns {
		t.Fatalf("%d OnClose calls after Close, want %d", len(closed), conns)
	}
	for _, ev := range closed {
		if !errors.Is(ev.err, ErrClosed) {
			t.Errorf("stream %d ended with %v, want ErrClosed", ev.info.ID, ev.err)
		}
	}
	for i, c := range clients {
		if _, err := io.Copy(io.Discard, c); !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("client %d saw %v, want ECONNRESET", i, err)
		}
	}
	if err := tun.regA.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	// Bridge after Close resets the stream and closes the connection itself.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := tun.a.NewStream(ctx, tun.b.ID(), testProto)
	if err != nil {
		t.Fatal(err)
	}
	local, remote := tcpPair(t)
	if _, err := tun.regA.Bridge(s, local, nil, nil); !errors.Is(err, ErrClosed) || err.Error() != "stream registry is closed" {
		t.Fatalf("Bridge after Close = %v, want %q", err, ErrClosed)
	}
	if _, err := s.Read(make([]byte, 1)); !errors.Is(err, network.ErrReset) {
		t.Errorf("stream read after refused Bridge: %v, want a reset", err)
	}
	if _, err := remote.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("conn read after refused Bridge: %v, want ECONNRESET", err)
	}
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t testing.TB) (*net.TCPConn, *net.TCPConn) {
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

// TestConnWithoutCloseWrite bridges a net.Pipe, which cannot half-close: the
// end of the stream data closes the pipe entirely, and the bridge still ends
// cleanly.
func TestConnWithoutCloseWrite(t *testing.T) {
	tests := []struct {
		name    string
		service func(net.Conn)
		client  func(net.Conn) error
	}{
		{
			name:    "client closes",
			service: echo,
			client: func(c net.Conn) error {
				if _, err := c.Write([]byte("hello")); err != nil {
					return err
				}
				buf := make([]byte, 5)
				if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello" {
					return errors.New("no echo")
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
			tun := newTunnel(t, tc.service, tunnelConfig{})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := tun.a.NewStream(ctx, tun.b.ID(), testProto)
			if err != nil {
				t.Fatal(err)
			}
			mine, theirs := net.Pipe()
			defer theirs.Close()
			if _, err := tun.regA.Bridge(s, mine, nil, nil); err != nil {
				t.Fatal(err)
			}
			if err := tc.client(theirs); err != nil {
				t.Fatal(err)
			}
			if ev := tun.hooksA.next(t); ev.err != nil {
				t.Fatalf("bridge ended with %v, want a clean end", ev.err)
			}
		})
	}
}

// TestResetRace resets streams while they end by themselves: each still has
// exactly one teardown and one OnClose.
func TestResetRace(t *testing.T) {
	const conns = 50
	tun := newTunnel(t, echo, tunnelConfig{})
	resetErrs := make(chan error, conns)
	for i := range conns {
		c := tun.dial(t)
		pingConn(t, c, "x")
		id := uint64(i)
		go func() { resetErrs <- tun.regA.Reset(id) }()
		_ = c.CloseWrite()
	}
	for range conns {
		if err := <-resetErrs; err != nil && !errors.Is(err, ErrNotFound) {
			t.Errorf("Reset: %v", err)
		}
	}
	waitFor(t, "A to empty", func() bool { return tun.regA.Len() == 0 })
	tun.close()
	opened, closed := tun.hooksA.snapshot()
	if len(opened) != conns || len(closed) != conns {
		t.Fatalf("%d opens, %d closes, want %d each", len(opened), len(closed), conns)
	}
	ids := map[uint64]bool{}
	for _, ev := range closed {
		if ev.err != nil && !errors.Is(ev.err, ErrResetRequested) && !errors.Is(ev.err, network.ErrReset) {
			t.Errorf("stream %d ended with %v", ev.info.ID, ev.err)
		}
		if ids[ev.info.ID] {
			t.Errorf("stream %d closed twice", ev.info.ID)
		}
		ids[ev.info.ID] = true
	}
}

func TestOptions(t *testing.T) {
	tests := []struct {
		name string
		opt  Option
		want string
	}{
		{"nil conn manager", WithConnManager(nil), "invalid stream registry option: connection manager is nil"},
		{"empty tag", WithProtectTag(""), "invalid stream registry option: protect tag is empty"},
		{"nil open hook", WithOnOpen(nil), "invalid stream registry option: open hook is nil"},
		{"nil close hook", WithOnClose(nil), "invalid stream registry option: close hook is nil"},
		{"buffer too small", WithBufferSize(1024), "invalid stream registry option: buffer size 1024 out of range [4096, 16777216]"},
		{"buffer too large", WithBufferSize(32 << 20), "invalid stream registry option: buffer size 33554432 out of range [4096, 16777216]"},
		{"negative park delay", WithParkDelay(-time.Second), "invalid stream registry option: park delay -1s out of range [0s, 1m0s]"},
		{"park delay too long", WithParkDelay(time.Hour), "invalid stream registry option: park delay 1h0m0s out of range [0s, 1m0s]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := New(tc.opt)
			if err == nil || err.Error() != tc.want || r != nil {
				t.Fatalf("New = %v, %v; want error %q", r, err, tc.want)
			}
			defer func() {
				if p := recover(); p == nil {
					t.Fatal("NewRegistry did not panic")
				}
			}()
			NewRegistry(tc.opt)
		})
	}

	r := NewRegistry(WithBufferSize(64<<10), WithProtectTag("x"))
	local, remote := tcpPair(t)
	if _, err := r.Bridge(nil, local, nil, nil); err == nil || err.Error() != "bridging a stream: stream and connection must both be set" {
		t.Fatalf("Bridge(nil stream) = %v", err)
	}
	if _, err := remote.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("conn of a refused Bridge: read %v, want ECONNRESET", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
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

// TestFalseEOF checks that a bare io.EOF that the stream does not confirm is
// a failure (reset), not a half-close.
func TestFalseEOF(t *testing.T) {
	svcConn := make(chan net.Conn, 1)
	tun := newTunnel(t, func(c net.Conn) {
		svcConn <- c
		_, _ = io.Copy(io.Discard, c)
	}, tunnelConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := tun.a.NewStream(ctx, tun.b.ID(), testProto)
	if err != nil {
		t.Fatal(err)
	}
	local, app := tcpPair(t)
	if _, err := tun.regA.Bridge(&lyingStream{Stream: s}, local, nil, nil); err != nil {
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
	abortConn(svc) // B resets the stream: the confirming read fails
	if _, err := app.Read(buf); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("app read %v, want ECONNRESET", err)
	}
	if ev := tun.hooksA.next(t); !errors.Is(ev.err, network.ErrReset) {
		t.Fatalf("bridge ended with %v, want a stream reset", ev.err)
	}
}

// bridgeGoroutines counts the goroutines running bridge code.
func bridgeGoroutines() int {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte("streams.(*bridge).run")) {
			n++
		}
	}
	return n
}

// TestIdleGoroutines checks that with the poller an idle bridge keeps one
// goroutine once its park delay has passed, and two when every direction
// waits in its own or the delay has not passed yet.
func TestIdleGoroutines(t *testing.T) {
	const conns = 20
	for _, tc := range []struct {
		name      string
		opts      []Option
		perBridge int
		stays     bool // perBridge holds for a while (no parking meanwhile)
	}{
		{"poll, park at once", []Option{WithParkDelay(0)}, 1, false},
		{"poll, default delay", nil, 1, false},
		{"poll, before the delay", []Option{WithParkDelay(time.Minute)}, 2, true},
		{"raw", []Option{withLocalMode(localRaw)}, 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tun := newTunnel(t, echo, tunnelConfig{optsA: tc.opts, optsB: tc.opts})
			for range conns {
				pingConn(t, tun.dial(t), "idle")
			}
			want := 2 * conns * tc.perBridge // a bridge on A and one on B
			waitFor(t, fmt.Sprintf("%d bridge goroutines", want), func() bool {
				return bridgeGoroutines() == want
			})
			if tc.stays {
				time.Sleep(300 * time.Millisecond)
				if got := bridgeGoroutines(); got != want {
					t.Fatalf("%d bridge goroutines 300 ms later, want still %d", got, want)
				}
			}
		})
	}
}

// TestRoundTrips sends many small request/response exchanges on one
// connection, so the local direction goes idle and wakes up again each time.
func TestRoundTrips(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []Option
	}{
		{"poll", nil}, // lingers: never parks between round trips
		{"poll, park at once", []Option{WithParkDelay(0)}}, // parks and wakes every time
		{"raw", []Option{withLocalMode(localRaw)}},
		{"plain", []Option{withLocalMode(localPlain)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tun := newTunnel(t, echo, tunnelConfig{optsA: tc.opts, optsB: tc.opts})
			c := tun.dial(t)
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
			waitFor(t, "300000 bytes counted out", func() bool {
				i, ok := tun.regA.Get(0)
				return ok && i.BytesOut == 300*1000 && i.BytesIn == 300*1000
			})
		})
	}
}
