package listeners

import (
	"bytes"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	manet "github.com/multiformats/go-multiaddr/net"
)

// TestForwardLazyStreams checks forwarded connections opened once the
// forwarding host knows the peer serves the protocol (the lazyStream path):
// data, a client that half-closes without sending, a service that speaks
// first, and a peer that stopped serving the protocol.
func TestForwardLazyStreams(t *testing.T) {
	greeting := []byte("220 hello\n")
	svc := newService(t, func(c net.Conn) {
		// Greets, then echoes; at EOF answers "bye" and half-closes.
		if _, err := c.Write(greeting); err != nil {
			return
		}
		if _, err := io.Copy(c, c); err != nil {
			return
		}
		_, _ = c.Write([]byte("bye"))
		_ = c.(*net.TCPConn).CloseWrite()
	})
	a, b := newNode(t), newNode(t)
	listenOn(t, b, svc.addr)
	fwd := forwardTo(t, a, addrTarget(t, b))

	// The first connection connects the hosts; after identify, A knows
	// that B serves the protocol.
	got, err := roundTrip(t, fwd.ListenAddr, []byte("first"))
	if err != nil || string(got) != string(greeting)+"firstbye" {
		t.Fatalf("first connection: got %q, %v", got, err)
	}
	waitFor(t, "A to learn B's protocols", func() bool {
		p, err := a.h.Peerstore().SupportsProtocols(b.h.ID(), testProto)
		return err == nil && len(p) == 1
	})

	t.Run("data", func(t *testing.T) {
		got, err := roundTrip(t, fwd.ListenAddr, []byte("ping"))
		if err != nil || string(got) != string(greeting)+"pingbye" {
			t.Fatalf("got %q, %v; want %q", got, err, string(greeting)+"pingbye")
		}
	})
	t.Run("half-close without data", func(t *testing.T) {
		got, err := roundTrip(t, fwd.ListenAddr, nil)
		if err != nil || string(got) != string(greeting)+"bye" {
			t.Fatalf("got %q, %v; want %q", got, err, string(greeting)+"bye")
		}
	})
	t.Run("service speaks first", func(t *testing.T) {
		c, err := manet.Dial(fwd.ListenAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(testTimeout))
		buf := make([]byte, len(greeting))
		if _, err := io.ReadFull(c, buf); err != nil || !bytes.Equal(buf, greeting) {
			t.Fatalf("read %q, %v; want the greeting %q", buf, err, greeting)
		}
	})
	t.Run("protocol no longer served", func(t *testing.T) {
		if n, err := b.reg.Close(Match{All: true}); err != nil || n != 1 {
			t.Fatalf("closing B's listen: %d, %v", n, err)
		}
		// Whatever identify pushed meanwhile, A believes B serves it.
		if err := a.h.Peerstore().AddProtocols(b.h.ID(), testProto); err != nil {
			t.Fatal(err)
		}
		got, err := roundTrip(t, fwd.ListenAddr, []byte("anyone?"))
		if len(got) != 0 || !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("got %q, %v; want nothing and a connection reset", got, err)
		}
	})
}
