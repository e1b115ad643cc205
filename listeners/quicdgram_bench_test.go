package listeners

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/quic-go/quic-go"
)

// BenchmarkQUICDatagramsVsStreamFrames sends payloads as fast as the
// sender can from one libp2p host to another over QUIC, two ways: as QUIC
// datagrams (RFC 9221, reached through network.Conn.As, which go-libp2p
// marks experimental) and as udpflow's frames (2-byte length, payload) on
// one QUIC stream. It reports payloads received per second and the share
// lost. It measures the transports only, for BENCHMARKS.md: UDP flows use
// the stream framing.
func BenchmarkQUICDatagramsVsStreamFrames(b *testing.B) {
	for _, size := range []int{64, 1200} {
		b.Run(fmt.Sprintf("datagrams/%dB", size), func(b *testing.B) { benchQUICDatagrams(b, size) })
		b.Run(fmt.Sprintf("stream-frames/%dB", size), func(b *testing.B) { benchQUICFrames(b, size) })
	}
}

// quicPair connects two QUIC hosts and returns them with each side's QUIC
// connection.
func quicPair(b *testing.B) (h1, h2 host.Host, q1, q2 *quic.Conn) {
	b.Helper()
	h1, h2 = newQUICHost(b), newQUICHost(b)
	if err := h1.Connect(b.Context(), addrInfo(h2)); err != nil {
		b.Fatal(err)
	}
	c1 := h1.Network().ConnsToPeer(h2.ID())
	c2 := h2.Network().ConnsToPeer(h1.ID())
	if len(c1) == 0 || len(c2) == 0 || !c1[0].As(&q1) || !c2[0].As(&q2) {
		b.Fatal("no QUIC connection between the hosts")
	}
	return h1, h2, q1, q2
}

// settled waits until n stops growing and returns it (the wait is outside
// the measured time: rates are taken up to the last arrival).
func settled(n *atomic.Int64) int64 {
	last := n.Load()
	for {
		time.Sleep(200 * time.Millisecond)
		if now := n.Load(); now != last {
			last = now
			continue
		}
		return last
	}
}

func reportDelivery(b *testing.B, got int64, elapsed time.Duration) {
	b.ReportMetric(float64(got)/elapsed.Seconds(), "received/s")
	b.ReportMetric(100*(1-float64(got)/float64(b.N)), "%lost")
}

func benchQUICDatagrams(b *testing.B, size int) {
	_, _, q1, q2 := quicPair(b)
	if d := q1.ConnectionState().SupportsDatagrams; !d.Local || !d.Remote {
		b.Skip("the QUIC connection does not support datagrams")
	}
	var got, lastAt atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, err := q2.ReceiveDatagram(ctx); err != nil {
				return
			}
			got.Add(1)
			lastAt.Store(time.Now().UnixNano())
		}
	}()
	defer func() { cancel(); <-done }()

	payload := make([]byte, size)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if err := q1.SendDatagram(payload); err != nil {
			b.Fatal(err)
		}
	}
	n := settled(&got)
	b.StopTimer()
	reportDelivery(b, n, time.Unix(0, lastAt.Load()).Sub(start))
}

func benchQUICFrames(b *testing.B, size int) {
	h1, h2, _, _ := quicPair(b)
	const proto = "/p2pd-bench/frames"
	var got atomic.Int64
	done := make(chan struct{})
	h2.SetStreamHandler(proto, func(s network.Stream) {
		defer close(done)
		defer s.Close()
		var hdr [2]byte
		buf := make([]byte, 1<<16)
		for {
			if _, err := io.ReadFull(s, hdr[:]); err != nil {
				return
			}
			if _, err := io.ReadFull(s, buf[:binary.BigEndian.Uint16(hdr[:])]); err != nil {
				return
			}
			got.Add(1)
		}
	})
	s, err := h1.NewStream(b.Context(), h2.ID(), proto)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	frame := binary.BigEndian.AppendUint16(nil, uint16(size))
	frame = append(frame, make([]byte, size)...)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if _, err := s.Write(frame); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.CloseWrite(); err != nil {
		b.Fatal(err)
	}
	<-done
	b.StopTimer()
	reportDelivery(b, got.Load(), time.Since(start))
}
