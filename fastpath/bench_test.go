package fastpath

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/p2pd/p2pd/internal/ends"
	"github.com/p2pd/p2pd/streams"
	"github.com/p2pd/p2pd/streams/streamstest"
)

// benchPair is one bridged stream: app is the local application's end of
// the TCP connection, remote the peer's end of the libp2p stream.
type benchPair struct {
	app    *net.TCPConn
	local  network.Stream // the bridged stream (only to be used with no bridge)
	remote network.Stream
	stop   func()
}

type bridgeFunc func(s network.Stream, c net.Conn) (stop func())

// registryBridge bridges with a Registry whose engine is built from opts.
func registryBridge(opts ...Option) bridgeFunc {
	return func(s network.Stream, c net.Conn) func() {
		r := newRegistry(opts...)
		if _, err := r.Bridge(s, c, nil, nil); err != nil {
			panic(err)
		}
		return func() { _ = r.Close() }
	}
}

// naiveBridge is the simplest bridge, for comparison: io.CopyBuffer each way
// with a 32 KiB buffer held for the life of the connection.
func naiveBridge(s network.Stream, c net.Conn) func() {
	done := make(chan struct{}, 2)
	go func() {
		_, _ = io.CopyBuffer(s, c, make([]byte, 32<<10))
		_ = s.CloseWrite()
		done <- struct{}{}
	}()
	go func() {
		_, _ = io.CopyBuffer(c, s, make([]byte, 32<<10))
		_ = c.(*net.TCPConn).CloseWrite()
		done <- struct{}{}
	}()
	return func() {
		_ = s.Reset()
		_ = c.Close()
		<-done
		<-done
	}
}

func newBenchPair(b *testing.B, ha host.Host, hb host.Host, fromB <-chan network.Stream, bridge bridgeFunc) *benchPair {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := ha.NewStream(ctx, hb.ID(), streamstest.Proto)
	if err != nil {
		b.Fatal(err)
	}
	local, app := streamstest.TCPPair(b)
	stop := func() { _ = s.Reset() }
	var first io.Writer = s
	if bridge != nil {
		stop = bridge(s, local)
		first = app
	}
	// One byte through the bridge makes B accept the (lazy) stream.
	if _, err := first.Write([]byte{1}); err != nil {
		b.Fatal(err)
	}
	remote := <-fromB
	if _, err := io.ReadFull(remote, make([]byte, 1)); err != nil {
		b.Fatal(err)
	}
	return &benchPair{app: app, local: s, remote: remote, stop: func() {
		_ = app.Close()
		_ = remote.Reset()
		stop()
	}}
}

// BenchmarkBridge measures one bridged stream, TCP <-> libp2p stream (TLS,
// yamux, loopback) per buffer size and direction. An op is 1 MiB. Besides
// MB/s it reports process allocations per MiB and CPU seconds per GiB (both
// hosts and the bridge live in this process).
func BenchmarkBridge(b *testing.B) {
	ha, hb := streamstest.NewHost(b), streamstest.NewHost(b)
	defer hb.Close()
	defer ha.Close()
	fromB := make(chan network.Stream, 1)
	hb.SetStreamHandler(streamstest.Proto, func(s network.Stream) { fromB <- s })
	streamstest.ConnectHosts(b, ha, hb)

	chunk := make([]byte, 1<<20)
	_, _ = rand.NewChaCha8([32]byte{}).Read(chunk)

	variants := []struct {
		name   string
		bridge bridgeFunc
	}{
		{"no-bridge", nil},
		{"naive-32KiB", naiveBridge},
		{"plain-128KiB", registryBridge(withLocalMode(localPlain), WithBufferSize(128<<10))},
		{"streams-plain-bridge", func(s network.Stream, c net.Conn) func() {
			r := streams.NewRegistry()
			if _, err := r.Bridge(s, c, nil, nil); err != nil {
				panic(err)
			}
			return func() { _ = r.Close() }
		}},
		{"raw-128KiB", registryBridge(withLocalMode(localRaw), WithBufferSize(128<<10))},
	}
	for _, kib := range []int{32, 64, 128, 256, 512, 1024} {
		variants = append(variants, struct {
			name   string
			bridge bridgeFunc
		}{fmt.Sprintf("buf-%dKiB", kib), registryBridge(WithBufferSize(kib << 10))})
	}
	for _, v := range variants {
		for _, dir := range []string{"up", "down"} {
			b.Run(v.name+"/"+dir, func(b *testing.B) {
				p := newBenchPair(b, ha, hb, fromB, v.bridge)
				defer p.stop()
				var near io.ReadWriter = p.app
				if v.bridge == nil {
					near = p.local // the stream itself, to measure libp2p alone
				}
				var w io.Writer = near
				var r io.Reader = p.remote
				if dir == "down" {
					w, r = p.remote, near
				}
				measureTransfer(b, w, r, chunk)
			})
		}
	}
}

// BenchmarkIdleBridge measures what one idle bridged connection costs in
// this process beyond its stream and TCP connection: heap and goroutine
// stacks after each connection has carried 64 KiB each way and gone idle. An
// op is one connection; the metric is bytes per connection.
func BenchmarkIdleBridge(b *testing.B) {
	for _, v := range []struct {
		name   string
		bridge func(r *streams.Registry, s network.Stream, c net.Conn)
	}{
		{"registry", func(r *streams.Registry, s network.Stream, c net.Conn) {
			if _, err := r.Bridge(s, c, nil, nil); err != nil {
				panic(err)
			}
		}},
		{"park-at-once", func(r *streams.Registry, s network.Stream, c net.Conn) {
			if _, err := r.Bridge(s, c, nil, nil); err != nil {
				panic(err)
			}
		}},
		{"no-bridge", nil},
		{"raw", func(r *streams.Registry, s network.Stream, c net.Conn) {
			if _, err := r.Bridge(s, c, nil, nil); err != nil {
				panic(err)
			}
		}},
		{"naive-32KiB", func(r *streams.Registry, s network.Stream, c net.Conn) {
			stop := naiveBridge(s, c)
			b.Cleanup(stop)
		}},
	} {
		b.Run(v.name, func(b *testing.B) {
			ha, hb := streamstest.NewHost(b), streamstest.NewHost(b)
			defer hb.Close()
			defer ha.Close()
			fromB := make(chan network.Stream, 1)
			hb.SetStreamHandler(streamstest.Proto, func(s network.Stream) { fromB <- s })
			streamstest.ConnectHosts(b, ha, hb)
			var opts []Option
			switch v.name {
			case "raw":
				opts = append(opts, withLocalMode(localRaw))
			case "park-at-once":
				opts = append(opts, WithParkDelay(0))
			}
			reg := newRegistry(opts...)
			defer reg.Close()

			type pair struct {
				s, remote network.Stream
				local     *net.TCPConn
				app       *net.TCPConn
			}
			var base runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&base)
			pairs := make([]pair, b.N)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			for i := range pairs {
				s, err := ha.NewStream(ctx, hb.ID(), streamstest.Proto)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := s.Write([]byte{1}); err != nil {
					b.Fatal(err)
				}
				remote := <-fromB
				if _, err := io.ReadFull(remote, make([]byte, 1)); err != nil {
					b.Fatal(err)
				}
				local, app := streamstest.TCPPair(b)
				pairs[i] = pair{s, remote, local, app}
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.GC()
			runtime.ReadMemStats(&before)
			b.ResetTimer()
			data := make([]byte, 64<<10)
			buf := make([]byte, 64<<10)
			for _, p := range pairs {
				// Without a bridge the same bytes cross the stream and the
				// TCP connection separately: that baseline is what libp2p
				// and the kernel sockets cost.
				var near io.ReadWriter = p.app
				if v.bridge != nil {
					v.bridge(reg, p.s, p.local)
				} else {
					near = p.s
				}
				if _, err := near.Write(data); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(p.remote, buf); err != nil {
					b.Fatal(err)
				}
				if _, err := p.remote.Write(data); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(near, buf); err != nil {
					b.Fatal(err)
				}
				if v.bridge == nil {
					if _, err := p.app.Write(data); err != nil {
						b.Fatal(err)
					}
					if _, err := io.ReadFull(p.local, buf); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.StopTimer()
			time.Sleep(DefaultParkDelay + 100*time.Millisecond) // let the loops park again
			runtime.GC()
			runtime.GC()
			runtime.ReadMemStats(&after)
			heap := int64(after.HeapInuse) - int64(before.HeapInuse)
			stack := int64(after.StackInuse) - int64(before.StackInuse)
			b.ReportMetric(float64(heap+stack)/float64(b.N), "B/conn")
			b.ReportMetric(float64(heap)/float64(b.N), "heap-B/conn")
			b.ReportMetric(float64(stack)/float64(b.N), "stack-B/conn")
			setup := int64(before.HeapInuse+before.StackInuse) - int64(base.HeapInuse+base.StackInuse)
			b.ReportMetric(float64(setup)/float64(b.N), "streams+tcp-B/conn")
			for _, p := range pairs {
				_ = p.remote.Reset()
				_ = p.app.Close()
			}
		})
	}
}

// tcpStream is a network.Stream carried by a TCP connection, so that the
// bridge's own cost can be measured without TLS and yamux.
type tcpStream struct {
	network.Stream // nil: only the methods below are used
	c              *net.TCPConn
	conn           network.Conn
}

func (t *tcpStream) Read(p []byte) (int, error)  { return t.c.Read(p) }
func (t *tcpStream) Write(p []byte) (int, error) { return t.c.Write(p) }
func (t *tcpStream) CloseWrite() error           { return t.c.CloseWrite() }
func (t *tcpStream) Close() error                { return t.c.Close() }
func (t *tcpStream) Reset() error                { ends.Abort(t.c); return nil }
func (t *tcpStream) Protocol() protocol.ID       { return streamstest.Proto }
func (t *tcpStream) Conn() network.Conn          { return t.conn }
func (t *tcpStream) Stat() network.Stats         { return network.Stats{Direction: network.DirInbound} }

type fakeConn struct{ network.Conn }

func (fakeConn) RemotePeer() peer.ID { return "" }

// BenchmarkBridgeTCP measures the bridge alone: TCP <-> bridge <-> TCP (a
// stream stand-in), per buffer size and direction; an op is 1 MiB.
func BenchmarkBridgeTCP(b *testing.B) {
	chunk := make([]byte, 1<<20)
	_, _ = rand.NewChaCha8([32]byte{}).Read(chunk)
	type variant struct {
		name string
		opts []Option
	}
	variants := []variant{
		{"plain-128KiB", []Option{withLocalMode(localPlain), WithBufferSize(128 << 10)}},
		{"raw-128KiB", []Option{withLocalMode(localRaw), WithBufferSize(128 << 10)}},
	}
	for _, kib := range []int{32, 64, 128, 256, 512, 1024} {
		variants = append(variants, variant{fmt.Sprintf("buf-%dKiB", kib), []Option{WithBufferSize(kib << 10)}})
	}
	for _, v := range variants {
		for _, dir := range []string{"up", "down"} {
			b.Run(v.name+"/"+dir, func(b *testing.B) {
				local, app := streamstest.TCPPair(b)
				sNear, sFar := streamstest.TCPPair(b)
				r := newRegistry(v.opts...)
				defer r.Close()
				if _, err := r.Bridge(&tcpStream{c: sNear, conn: fakeConn{}}, local, nil, nil); err != nil {
					b.Fatal(err)
				}
				var w io.Writer = app
				var rd io.Reader = sFar
				if dir == "down" {
					w, rd = sFar, app
				}
				measureTransfer(b, w, rd, chunk)
			})
		}
	}
}

// measureTransfer writes b.N chunks of 1 MiB to w while reading them from r,
// and reports allocations and CPU time per MiB moved.
func measureTransfer(b *testing.B, w io.Writer, r io.Reader, chunk []byte) {
	b.Helper()
	b.SetBytes(1 << 20)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cpu0 := cpuTime()
	b.ResetTimer()
	werr := make(chan error, 1)
	go func() {
		for range b.N {
			if _, err := w.Write(chunk); err != nil {
				werr <- err
				return
			}
		}
		werr <- nil
	}()
	buf := make([]byte, 256<<10)
	for left := int64(b.N) << 20; left > 0; {
		n, err := r.Read(buf[:min(int64(len(buf)), left)])
		left -= int64(n)
		if err != nil {
			b.Fatalf("read: %v", err)
		}
	}
	if err := <-werr; err != nil {
		b.Fatalf("write: %v", err)
	}
	b.StopTimer()
	cpu := cpuTime() - cpu0
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(b.N), "allocs/MiB")
	b.ReportMetric(cpu.Seconds()/float64(b.N)*1024, "cpu-s/GiB")
}
