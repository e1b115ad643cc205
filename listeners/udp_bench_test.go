package listeners

import (
	"testing"
	"time"
)

// BenchmarkUDPEcho measures 64-byte datagrams echoed through a UDP forward
// and listen (one flow over TCP+TLS+yamux), with up to 64 on their way at
// once, so none is lost: one op is one datagram there and back.
func BenchmarkUDPEcho(b *testing.B) {
	const window = 64
	svc := newUDPService(b)
	a, srv := newNode(b), newNode(b)
	fwd := udpTunnel(b, a, srv, svc.addr)
	c := udpClient(b, fwd.ListenAddr)
	mustExchange(b, c, []byte("warm-up"))

	msg := make([]byte, 64)
	slots := make(chan struct{}, window)
	done := make(chan error, 1)
	b.ResetTimer()
	go func() {
		buf := make([]byte, 1<<16)
		for range b.N {
			_ = c.SetReadDeadline(time.Now().Add(testTimeout))
			if _, err := c.Read(buf); err != nil {
				done <- err
				return
			}
			<-slots
		}
		done <- nil
	}()
	for range b.N {
		slots <- struct{}{}
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatalf("an echo was lost: %v", err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "datagrams/s")
}
