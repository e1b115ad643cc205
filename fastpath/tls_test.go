package fastpath

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/sec"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	tptu "github.com/libp2p/go-libp2p/p2p/net/upgrader"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
)

// countingConn counts the writes that reach a connection.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// tlsPair runs the TLS handshake of two transports made by newTransport
// over a loopback TCP connection and returns the two secured ends and the
// client's raw connection, which counts its writes.
func tlsPair(t *testing.T, newTransport func(crypto.PrivKey) (sec.SecureTransport, error)) (client, server sec.SecureConn, raw *countingConn) {
	t.Helper()
	keys := make([]crypto.PrivKey, 2)
	trs := make([]sec.SecureTransport, 2)
	for i := range keys {
		k, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = k
		if trs[i], err = newTransport(k); err != nil {
			t.Fatal(err)
		}
	}
	serverID, err := peer.IDFromPrivateKey(keys[1])
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	type result struct {
		c   sec.SecureConn
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		sc, err := trs[1].SecureInbound(ctx, c, "")
		done <- result{sc, err}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	raw = &countingConn{Conn: c}
	client, err = trs[0].SecureOutbound(ctx, raw, serverID)
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		client.Close()
		t.Fatal(r.err)
	}
	t.Cleanup(func() {
		client.Close()
		r.c.Close()
	})
	return client, r.c, raw
}

var testMuxers = []tptu.StreamMuxer{{ID: yamux.ID, Muxer: yamux.DefaultTransport}}

func coalescing(k crypto.PrivKey) (sec.SecureTransport, error) {
	return NewCorkedTLS(libp2ptls.ID, k, testMuxers)
}

func plainTLS(k crypto.PrivKey) (sec.SecureTransport, error) {
	return libp2ptls.New(libp2ptls.ID, k, testMuxers)
}

// TestCoalescedWrites sends writes of several sizes through the coalescing
// TLS transport and through go-libp2p's own, and checks that the bytes
// arrive intact (SHA-256) and that each write of the coalescing one reached
// the socket in one system call where the plain one needed one per record.
func TestCoalescedWrites(t *testing.T) {
	tests := []struct {
		name string
		size int
		// writes that reach the socket for one Write
		coalesced, plain int64
	}{
		{"one byte", 1, 1, 1},
		{"one record", 16 << 10, 1, 1},
		{"yamux frame", 64 << 10, 1, 4},
		{"frame and a bit", 64<<10 + 5, 1, 5},
		{"past the cork limit", maxCorked + 100<<10, 2, 39},
	}
	for _, tr := range []struct {
		name string
		new  func(crypto.PrivKey) (sec.SecureTransport, error)
	}{{"coalescing", coalescing}, {"plain", plainTLS}} {
		client, server, raw := tlsPair(t, tr.new)
		// crypto/tls starts with small records and uses full 16 KiB ones
		// after the first 128 KiB.
		warm := make([]byte, 256<<10)
		go func() { _, _ = client.Write(warm) }()
		if _, err := io.ReadFull(server, warm); err != nil {
			t.Fatal(err)
		}
		for _, tt := range tests {
			t.Run(tr.name+"/"+tt.name, func(t *testing.T) {
				data := make([]byte, tt.size)
				if _, err := rand.Read(data); err != nil {
					t.Fatal(err)
				}
				got := make(chan []byte, 1)
				go func() {
					buf := make([]byte, tt.size)
					_, _ = io.ReadFull(server, buf)
					got <- buf
				}()
				before := raw.writes.Load()
				n, err := client.Write(data)
				if err != nil || n != tt.size {
					t.Fatalf("Write = %d, %v; want %d, nil", n, err, tt.size)
				}
				writes := raw.writes.Load() - before
				if b := <-got; sha256.Sum256(b) != sha256.Sum256(data) {
					t.Fatalf("the %d bytes that arrived differ from those sent", tt.size)
				}
				want := tt.coalesced
				if tr.name == "plain" {
					want = tt.plain
				}
				if writes != want {
					t.Fatalf("%d writes reached the socket, want %d", writes, want)
				}
			})
		}
	}
}

// TestCoalescedBothWays checks that the coalescing transport carries data
// both ways at once and that closing one end is seen by the other.
func TestCoalescedBothWays(t *testing.T) {
	client, server, _ := tlsPair(t, coalescing)
	msg := bytes.Repeat([]byte("p2pd"), 50000)
	errs := make(chan error, 2)
	for _, c := range []sec.SecureConn{client, server} {
		go func() {
			_, err := c.Write(msg)
			errs <- err
		}()
	}
	for _, c := range []sec.SecureConn{client, server} {
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf, msg) {
			t.Fatal("received bytes differ from those sent")
		}
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if err := client.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("read after the peer closed: %v, want EOF", err)
	}
}

// TestCorkedWriteError checks that a failed write reports nothing written.
func TestCorkedWriteError(t *testing.T) {
	client, _, raw := tlsPair(t, coalescing)
	_ = raw.Conn.Close() // under TLS: the next flush fails
	n, err := client.Write(make([]byte, 100))
	if err == nil || n != 0 {
		t.Fatalf("Write on a closed socket = %d, %v; want 0 and an error", n, err)
	}
}
