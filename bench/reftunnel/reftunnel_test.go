package reftunnel

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/p2pd/p2pd/internal/nettest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// echoServer serves an echo service on loopback: every connection gets its
// bytes back, and its end of data (CloseWrite) is passed on.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
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
				_, _ = io.Copy(c, c)
				_ = c.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// tunnel starts an exit to target and an entry to the exit, encrypted
// unless plain; it returns the entry's address.
func tunnel(t *testing.T, target string, plain bool) string {
	t.Helper()
	return tunnelVia(t, target, plain, func(exit string) string { return exit })
}

// tunnelVia is tunnel with the entry dialling via(exit address) instead of
// the exit itself, for a relay in between.
func tunnelVia(t *testing.T, target string, plain bool, via func(exit string) string) string {
	t.Helper()
	cert, pool, err := NewCertificate()
	if err != nil {
		t.Fatal(err)
	}
	exitOpts, entryOpts := []Option{WithCertificate(cert)}, []Option{WithRootCAs(pool)}
	if plain {
		exitOpts, entryOpts = []Option{WithoutEncryption()}, []Option{WithoutEncryption()}
	}
	ctx := context.Background()
	exit, err := Listen(ctx, Exit, "127.0.0.1:0", target, exitOpts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exit.Close() })
	entry, err := Listen(ctx, Entry, "127.0.0.1:0", via(exit.Addr().String()), entryOpts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { entry.Close() })
	return entry.Addr().String()
}

// TestTunnelSHA256 sends 8 MiB of random bytes through the tunnel to an
// echo service, half-closes, and checks that the same bytes come back.
func TestTunnelSHA256(t *testing.T) {
	t.Run("tls", func(t *testing.T) { testTunnelSHA256(t, false) })
	t.Run("plain", func(t *testing.T) { testTunnelSHA256(t, true) })
}

func testTunnelSHA256(t *testing.T, plain bool) {
	addr := tunnel(t, echoServer(t), plain)
	data := make([]byte, 8<<20)
	_, _ = rand.NewChaCha8([32]byte{7}).Read(data)

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		werr <- err
	}()
	h := sha256.New()
	n, err := io.Copy(h, c) // ends only when the echo's CloseWrite came through
	if err != nil {
		t.Fatalf("reading the echo: %v", err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("writing: %v", err)
	}
	if want := sha256.Sum256(data); n != int64(len(data)) || !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatalf("got %d bytes with SHA-256 %x, want %d bytes with %x", n, h.Sum(nil), len(data), want)
	}
}

// TestUnreachableTarget checks that a client of a tunnel whose target is
// down sees its connection end rather than hang.
func TestUnreachableTarget(t *testing.T) {
	dead := nettest.RefusingAddr(t).String()
	c, err := net.Dial("tcp", tunnel(t, dead, false))
	if errors.Is(err, syscall.ECONNRESET) {
		// The tunnel gave up and reset the connection before the dial
		// had returned: it ended, which is what this test wants.
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	n, err := c.Read(make([]byte, 1))
	if n != 0 || err == nil {
		t.Fatalf("read %d bytes, err %v; want the connection to end", n, err)
	}
	var ne net.Error
	if ok := asNetErr(err, &ne); ok && ne.Timeout() {
		t.Fatalf("read timed out: the tunnel left the connection hanging")
	}
}

// TestPlainIsPlain checks that WithoutEncryption really sends the client's
// bytes in the clear between the halves (so that the floor it measures has
// no hidden work), and that an encrypted tunnel does not. A tap between the
// entry and the exit records what crosses, while the bytes still make the
// whole round trip to an echo service.
func TestPlainIsPlain(t *testing.T) {
	for _, plain := range []bool{true, false} {
		t.Run(fmt.Sprint("plain=", plain), func(t *testing.T) {
			var seen <-chan []byte
			entry := tunnelVia(t, echoServer(t), plain, func(exit string) (addr string) {
				addr, seen = tap(t, exit)
				return addr
			})

			msg := []byte("GET / HTTP/1.0\r\n\r\n")
			c, err := net.Dial("tcp", entry)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Write(msg); err != nil {
				t.Fatal(err)
			}
			if err := c.(*net.TCPConn).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			echo, err := io.ReadAll(c)
			if err != nil || !bytes.Equal(echo, msg) {
				t.Fatalf("echo through the tunnel: %q, %v; want %q", echo, err, msg)
			}
			b := <-seen
			if len(b) == 0 {
				t.Fatal("the tap between entry and exit saw no bytes")
			}
			if clear := bytes.Contains(b, msg); clear != plain {
				t.Errorf("the tap saw %q in the clear: %v, want %v", msg, clear, plain)
			}
		})
	}
}

// tap relays one connection to remote and, once it has ended, sends what
// went from its client towards remote.
func tap(t *testing.T, remote string) (addr string, seen <-chan []byte) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan []byte, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(out)
		in, err := ln.Accept()
		if err != nil {
			return
		}
		defer in.Close()
		far, err := net.Dial("tcp", remote)
		if err != nil {
			return
		}
		defer far.Close()
		var rec bytes.Buffer
		back := make(chan struct{})
		go func() {
			defer close(back)
			_, _ = io.Copy(in, far)
			_ = in.(*net.TCPConn).CloseWrite()
		}()
		_, _ = io.Copy(io.MultiWriter(far, &rec), in)
		_ = far.(*net.TCPConn).CloseWrite()
		<-back
		out <- rec.Bytes()
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return ln.Addr().String(), out
}

func asNetErr(err error, target *net.Error) bool {
	ne, ok := err.(net.Error)
	if ok {
		*target = ne
	}
	return ok
}

func TestListenErrors(t *testing.T) {
	cert, pool, err := NewCertificate()
	if err != nil {
		t.Fatal(err)
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	busy := taken.Addr().String()
	tests := []struct {
		name string
		role Role
		addr string
		opts []Option
		want string
	}{
		{"entry without roots", Entry, "127.0.0.1:0", nil,
			"reference tunnel entry: no root CAs to verify the exit (WithRootCAs)"},
		{"exit without certificate", Exit, "127.0.0.1:0", nil,
			"reference tunnel exit: no certificate (WithCertificate)"},
		{"empty certificate", Exit, "127.0.0.1:0", []Option{WithCertificate(tls.Certificate{})},
			"reference tunnel exit: certificate: no certificate or no private key"},
		{"nil pool", Entry, "127.0.0.1:0", []Option{WithRootCAs(nil)},
			"reference tunnel entry: root CAs: nil pool"},
		{"buffer too small", Entry, "127.0.0.1:0", []Option{WithRootCAs(pool), WithBufferSize(10)},
			"reference tunnel entry: buffer size 10 is outside 1 KiB-16 MiB"},
		{"unknown role", Role(9), "127.0.0.1:0", nil,
			"reference tunnel: unknown role 9"},
		{"address in use", Exit, busy, []Option{WithCertificate(cert)},
			"reference tunnel exit: listening on " + busy + ": listen tcp " + busy + ": bind: address already in use"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Listen(context.Background(), tt.role, tt.addr, "127.0.0.1:1", tt.opts...)
			if err == nil {
				p.Close()
				t.Fatalf("Listen succeeded, want error %q", tt.want)
			}
			if err.Error() != tt.want {
				t.Fatalf("error %q, want %q", err, tt.want)
			}
		})
	}
}
