package listeners

import (
	"io"
	"net"
	"testing"

	manet "github.com/multiformats/go-multiaddr/net"
)

// BenchmarkForwardThroughput measures bulk bytes through TCP client ->
// forward -> libp2p (TCP+TLS+yamux) -> listen -> TCP sink, 8 MiB per
// connection.
func BenchmarkForwardThroughput(b *testing.B) {
	const size = 8 << 20
	svc := newService(b, func(c net.Conn) {
		_, _ = io.Copy(io.Discard, c)
		_ = c.(*net.TCPConn).CloseWrite()
	})
	a, srv := newNode(b), newNode(b)
	listenOn(b, srv, svc.addr)
	fwd := forwardTo(b, a, addrTarget(b, srv))
	buf := make([]byte, 256<<10)

	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		c, err := manet.Dial(fwd.ListenAddr)
		if err != nil {
			b.Fatal(err)
		}
		for sent := 0; sent < size; sent += len(buf) {
			if _, err := c.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
		if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, c); err != nil { // wait for the sink's end
			b.Fatal(err)
		}
		c.Close()
	}
}

// BenchmarkForwardConnect measures one new local connection through an
// established libp2p connection: accept, stream open, target dial, bridge,
// and a 1-byte echo.
func BenchmarkForwardConnect(b *testing.B) {
	svc := newService(b, echo)
	a, srv := newNode(b), newNode(b)
	listenOn(b, srv, svc.addr)
	fwd := forwardTo(b, a, addrTarget(b, srv))
	one := []byte{'x'}

	for b.Loop() {
		got, err := roundTrip(b, fwd.ListenAddr, one)
		if err != nil || len(got) != 1 {
			b.Fatalf("round trip: %q, %v", got, err)
		}
	}
}
