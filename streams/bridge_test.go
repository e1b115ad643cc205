package streams

import (
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"go.uber.org/goleak"
)

// TestBulk copies 64 MiB each way at once, with different data per
// direction, and compares SHA-256 on both ends and the byte counters.
func TestBulk(t *testing.T) {
	const size = 64 << 20
	got := make(chan [32]byte, 1)
	tun := newTunnel(t, func(c net.Conn) {
		sendErr := make(chan error, 1)
		go func() { sendErr <- sendAndClose(c.(*net.TCPConn), 2, size) }()
		s, _, err := readSum(c)
		if e := <-sendErr; err == nil && e == nil {
			got <- s
		}
	}, tunnelConfig{})

	c := tun.dial(t)
	sendErr := make(chan error, 1)
	go func() { sendErr <- sendAndClose(c, 1, size) }()
	recv, n, err := readSum(c)
	if err != nil {
		t.Fatalf("client read: %v", err)
	}
	if err := <-sendErr; err != nil {
		t.Fatalf("client: %v", err)
	}
	if n != size || recv != sumOf(2, size) {
		t.Fatalf("client received %d bytes with a different SHA-256 than the service sent", n)
	}
	select {
	case s := <-got:
		if s != sumOf(1, size) {
			t.Fatal("service received data with a different SHA-256 than the client sent")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("service did not finish")
	}

	for _, side := range []struct {
		name  string
		hooks *hookLog
	}{{"A", tun.hooksA}, {"B", tun.hooksB}} {
		ev := side.hooks.next(t)
		if ev.err != nil || ev.info.BytesIn != size || ev.info.BytesOut != size {
			t.Errorf("%s: OnClose(in=%d out=%d, err=%v), want in=out=%d and nil", side.name, ev.info.BytesIn, ev.info.BytesOut, ev.err, size)
		}
	}
}

// TestHalfClose checks that one direction keeps flowing after the other has
// ended, whichever end closes first, with both read paths.
func TestHalfClose(t *testing.T) {
	const size = 1 << 20
	tests := []struct {
		name  string
		opts  []Option
		first string // who half-closes first
	}{
		{"client closes first", nil, "client"},
		{"service closes first", nil, "service"},
		{"client closes first, plain read", []Option{withLocalMode(localPlain)}, "client"},
		{"service closes first, plain read", []Option{withLocalMode(localPlain)}, "service"},
		{"client closes first, raw read", []Option{withLocalMode(localRaw)}, "client"},
		{"service closes first, raw read", []Option{withLocalMode(localRaw)}, "service"},
		{"client closes first, small buffers", []Option{WithBufferSize(4 << 10)}, "client"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			svcGot := make(chan [32]byte, 1)
			var service func(net.Conn)
			if tc.first == "client" {
				// Reply only after EOF: the SHA-256 of what came, then 1 MiB.
				service = func(c net.Conn) {
					s, _, err := readSum(c)
					if err != nil {
						return
					}
					if _, err := c.Write(s[:]); err != nil {
						return
					}
					_ = sendAndClose(c.(*net.TCPConn), 7, size)
				}
			} else {
				// Speak first and half-close, then read to EOF.
				service = func(c net.Conn) {
					if err := sendAndClose(c.(*net.TCPConn), 7, size); err != nil {
						return
					}
					if s, _, err := readSum(c); err == nil {
						svcGot <- s
					}
				}
			}
			tun := newTunnel(t, service, tunnelConfig{optsA: tc.opts, optsB: tc.opts})
			c := tun.dial(t)

			if tc.first == "client" {
				if err := sendAndClose(c, 3, size); err != nil {
					t.Fatal(err)
				}
				var echoed [32]byte
				if _, err := io.ReadFull(c, echoed[:]); err != nil {
					t.Fatalf("reading the reply: %v", err)
				}
				if echoed != sumOf(3, size) {
					t.Fatal("service saw different bytes than the client sent")
				}
				s, n, err := readSum(c)
				if err != nil || n != size || s != sumOf(7, size) {
					t.Fatalf("reply: %d bytes, err %v, sha match %v", n, err, s == sumOf(7, size))
				}
			} else {
				s, n, err := readSum(c) // returns only once the service's EOF came through
				if err != nil || n != size || s != sumOf(7, size) {
					t.Fatalf("service data: %d bytes, err %v, sha match %v", n, err, s == sumOf(7, size))
				}
				if err := sendAndClose(c, 3, size); err != nil {
					t.Fatalf("client after EOF: %v", err)
				}
				select {
				case got := <-svcGot:
					if got != sumOf(3, size) {
						t.Fatal("service saw different bytes than the client sent")
					}
				case <-time.After(20 * time.Second):
					t.Fatal("service did not get the client's data")
				}
			}
			for _, h := range []*hookLog{tun.hooksA, tun.hooksB} {
				if ev := h.next(t); ev.err != nil {
					t.Errorf("stream %d ended with %v, want a clean end", ev.info.ID, ev.err)
				}
			}
		})
	}
}

// TestConcurrent runs 200 connections at once, each echoed and checked.
func TestConcurrent(t *testing.T) {
	const conns, size = 200, 32 << 10
	tun := newTunnel(t, echo, tunnelConfig{})
	errs := make(chan error, conns)
	for i := range conns {
		go func() {
			c, err := net.Dial("tcp", tun.addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			tc := c.(*net.TCPConn)
			sendErr := make(chan error, 1)
			go func() { sendErr <- sendAndClose(tc, uint64(100+i), size) }()
			s, n, err := readSum(tc)
			if e := <-sendErr; e != nil {
				errs <- e
				return
			}
			if err != nil {
				errs <- err
				return
			}
			if n != size || s != sumOf(uint64(100+i), size) {
				errs <- errors.New("echo differs from what was sent")
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
	waitFor(t, "both registries to empty", func() bool { return tun.regA.Len() == 0 && tun.regB.Len() == 0 })
	for name, h := range map[string]*hookLog{"A": tun.hooksA, "B": tun.hooksB} {
		opened, closed := h.snapshot()
		if len(opened) != conns || len(closed) != conns {
			t.Errorf("%s: %d opens and %d closes, want %d each", name, len(opened), len(closed), conns)
		}
		seen := map[uint64]bool{}
		for _, ev := range closed {
			if ev.err != nil || ev.info.BytesIn != size || ev.info.BytesOut != size {
				t.Errorf("%s: stream %d: in=%d out=%d err=%v", name, ev.info.ID, ev.info.BytesIn, ev.info.BytesOut, ev.err)
			}
			if ev.info.ID >= conns || seen[ev.info.ID] {
				t.Errorf("%s: unexpected or repeated ID %d", name, ev.info.ID)
			}
			seen[ev.info.ID] = true
		}
	}
}

// pingConn writes msg and reads it back (the service must echo), proving the
// tunnel is fully set up.
func pingConn(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("ping write: %v", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
		t.Fatalf("ping read: %q, %v", buf, err)
	}
}

// TestReset resets a stream by ID: both TCP ends see a reset, the registry
// forgets it, and IDs are not reused.
func TestReset(t *testing.T) {
	svcErr := make(chan error, 4)
	tun := newTunnel(t, func(c net.Conn) {
		_, err := io.Copy(c, c)
		svcErr <- err
	}, tunnelConfig{})

	c := tun.dial(t)
	pingConn(t, c, "ping")
	// The client may read the echo a moment before the bridge counts it.
	waitFor(t, "the counters", func() bool { i, _ := tun.regA.Get(0); return i.BytesIn == 4 && i.BytesOut == 4 })
	list := tun.regA.List()
	if len(list) != 1 {
		t.Fatalf("List has %d entries, want 1", len(list))
	}
	info := list[0]
	if info.ID != 0 || info.Protocol != testProto || info.Peer != tun.b.ID() ||
		!info.Target.Equal(p2pAddr(t, tun.b.ID())) || !info.Origin.Equal(netAddr(t, c.LocalAddr())) ||
		info.BytesOut != 4 || info.BytesIn != 4 || info.Started.IsZero() {
		t.Fatalf("unexpected Info %+v", info)
	}
	if got, ok := tun.regA.Get(0); !ok || got.ID != 0 {
		t.Fatalf("Get(0) = %+v, %v", got, ok)
	}

	if err := tun.regA.Reset(0); err != nil {
		t.Fatalf("Reset(0): %v", err)
	}
	if n := len(tun.regA.List()); n != 0 {
		t.Fatalf("List has %d entries after Reset, want 0", n)
	}
	if _, ok := tun.regA.Get(0); ok {
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
	if ev := tun.hooksA.next(t); !errors.Is(ev.err, ErrResetRequested) {
		t.Errorf("A OnClose err = %v, want ErrResetRequested", ev.err)
	}
	if ev := tun.hooksB.next(t); !errors.Is(ev.err, network.ErrReset) {
		t.Errorf("B OnClose err = %v, want a stream reset", ev.err)
	}
	waitFor(t, "B to forget the stream", func() bool { return tun.regB.Len() == 0 })

	for _, tc := range []struct {
		name string
		id   uint64
		want string
	}{
		{"already reset", 0, "resetting stream 0: no such stream"},
		{"never existed", 42, "resetting stream 42: no such stream"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tun.regA.Reset(tc.id)
			if err == nil || err.Error() != tc.want || !errors.Is(err, ErrNotFound) {
				t.Fatalf("Reset(%d) = %v, want %q", tc.id, err, tc.want)
			}
		})
	}

	c2 := tun.dial(t)
	pingConn(t, c2, "again")
	if list := tun.regA.List(); len(list) != 1 || list[0].ID != 1 {
		t.Fatalf("second stream: %+v, want one stream with ID 1", list)
	}
	if n := tun.regA.ResetAll(); n != 1 {
		t.Fatalf("ResetAll = %d, want 1", n)
	}
	if _, err := c2.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client read after ResetAll: %v, want ECONNRESET", err)
	}
}

// TestRemoteHostClosed closes B's host mid-transfer: A's client sees a reset,
// A's registry empties and no goroutine is left.
func TestRemoteHostClosed(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	tun := newTunnel(t, endless, tunnelConfig{})
	c := tun.dial(t)
	if _, err := io.CopyN(io.Discard, c, 4<<20); err != nil {
		t.Fatalf("reading the first 4 MiB: %v", err)
	}
	if err := tun.b.Close(); err != nil {
		t.Fatalf("closing host B: %v", err)
	}
	_, err := io.Copy(io.Discard, c)
	ev := tun.hooksA.next(t)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client saw %v, want ECONNRESET (A's bridge ended with %v)", err, ev.err)
	}
	if ev.err == nil || ev.info.BytesIn < 4<<20 {
		t.Errorf("A OnClose: err %v, in=%d; want an error and ≥ 4 MiB", ev.err, ev.info.BytesIn)
	}
	if n := tun.regA.Len(); n != 0 {
		t.Errorf("A still lists %d streams", n)
	}
	tun.close()
	_ = c.Close()
	goleak.VerifyNone(t, ignore)
}

// TestConnManagerProtection checks that a peer is protected while it has at
// least one stream, and unprotected after the last.
func TestConnManagerProtection(t *testing.T) {
	tun := newTunnel(t, echo, tunnelConfig{
		protect: true,
		optsB:   []Option{WithProtectTag("custom")},
	})
	cmA, cmB := tun.a.ConnManager(), tun.b.ConnManager()
	protectedA := func() bool { return cmA.IsProtected(tun.b.ID(), DefaultProtectTag) }
	protectedB := func() bool { return cmB.IsProtected(tun.a.ID(), "custom") }
	if protectedA() || protectedB() {
		t.Fatal("protected before any stream")
	}

	c1, c2 := tun.dial(t), tun.dial(t)
	pingConn(t, c1, "one")
	pingConn(t, c2, "two")
	waitFor(t, "B to register both", func() bool { return tun.regB.Len() == 2 })
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
	waitFor(t, "one stream to end", func() bool { return tun.regA.Len() == 1 && tun.regB.Len() == 1 })
	if !protectedA() || !protectedB() {
		t.Fatalf("with one stream left: protected A=%v B=%v, want both", protectedA(), protectedB())
	}
	endConn(c2)
	waitFor(t, "both streams to end", func() bool { return tun.regA.Len() == 0 && tun.regB.Len() == 0 })
	if protectedA() || protectedB() {
		t.Fatalf("after the last stream: protected A=%v B=%v, want neither", protectedA(), protectedB())
	}
}
