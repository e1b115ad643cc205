package host

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	lphost "github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
)

const (
	manyProto = protocol.ID("/x/p2pd-test/many")
	helloByte = 0x5a
	// quicStreamCap is quic-go's MaxIncomingStreams as go-libp2p configures
	// it (p2p/transport/quicreuse/config.go).
	quicStreamCap = 256
)

// holdServer is a stream handler that reads a hello byte, counts the
// stream as open, then waits for one payload byte, answers with its
// complement, waits for the dialer's EOF and closes.
type holdServer struct {
	want      int64
	opened    atomic.Int64 // streams that delivered their hello
	active    atomic.Int64 // streams between hello and the dialer's EOF
	maxActive atomic.Int64 // highest value active reached
	allOpen   chan struct{}
	openOnce  sync.Once
	wg        sync.WaitGroup // running handlers
	mu        sync.Mutex     // guards firstErr and failures
	firstErr  error
	failures  int
}

func newHoldServer(want int) *holdServer {
	return &holdServer{want: int64(want), allOpen: make(chan struct{})}
}

func (s *holdServer) fail(st network.Stream, err error) {
	st.Reset()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures++
	if s.firstErr == nil {
		s.firstErr = err
	}
}

// failed is how many streams the handler gave up on.
func (s *holdServer) failed() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int64(s.failures)
}

func (s *holdServer) handle(st network.Stream) {
	s.wg.Add(1)
	defer s.wg.Done()
	var b [1]byte
	if _, err := io.ReadFull(st, b[:]); err != nil || b[0] != helloByte {
		s.fail(st, fmt.Errorf("reading hello: got %#x: %v", b[0], err))
		return
	}
	n := s.active.Add(1)
	for m := s.maxActive.Load(); n > m && !s.maxActive.CompareAndSwap(m, n); m = s.maxActive.Load() {
	}
	if s.opened.Add(1) == s.want {
		s.openOnce.Do(func() { close(s.allOpen) })
	}
	// Counted down before Close: QUIC hands out a new stream credit only
	// once this stream is closed, so active can never overshoot the cap.
	defer s.active.Add(-1)
	if _, err := io.ReadFull(st, b[:]); err != nil {
		s.fail(st, fmt.Errorf("reading payload: %w", err))
		return
	}
	b[0] = ^b[0]
	if _, err := st.Write(b[:]); err != nil {
		s.fail(st, fmt.Errorf("writing reply: %w", err))
		return
	}
	if n, err := st.Read(b[:]); n != 0 || err != io.EOF {
		s.fail(st, fmt.Errorf("waiting for EOF: read %d bytes, err %v", n, err))
		return
	}
	if err := st.Close(); err != nil {
		s.fail(st, fmt.Errorf("closing: %w", err))
	}
}

func (s *holdServer) check(t *testing.T) {
	t.Helper()
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failures > 0 {
		t.Fatalf("%d handlers failed, first: %v", s.failures, s.firstErr)
	}
}

// waitFor polls cond until it holds or ctx ends.
func waitFor(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("gave up waiting for %s: %v", what, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func payload(i int) byte { return byte(i*7 + 3) }

// wantDigest is the SHA-256 of the n replies a holdServer sends.
func wantDigest(n int) [32]byte {
	buf := make([]byte, n)
	for i := range buf {
		buf[i] = ^payload(i)
	}
	return sha256.Sum256(buf)
}

// connectedPair builds two hosts with opts and connects a to b.
func connectedPair(ctx context.Context, t *testing.T, opts ...Option) (a, b lphost.Host) {
	t.Helper()
	a = newHost(t, opts...)
	b = newHost(t, opts...)
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatal(err)
	}
	return a, b
}

// memMiB reports heap and goroutine stack memory in use, in MiB.
func memMiB() (heap, stack float64) {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapInuse) / (1 << 20), float64(m.StackInuse) / (1 << 20)
}

// TestTenThousandStreamsTCP opens 10,000 concurrent streams on one custom
// protocol from A to B (both built by New with its default limits, TCP on
// loopback), holds them all open at once, then writes and reads one byte on
// every one, and closes them all.
func TestTenThousandStreamsTCP(t *testing.T) {
	const n = 10000
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	a, b := connectedPair(ctx, t, ListenAddrs(ma.StringCast("/ip4/127.0.0.1/tcp/0")), Transports(TCP))
	srv := newHoldServer(n)
	b.SetStreamHandler(manyProto, srv.handle)
	heapBefore, stackBefore := memMiB()

	// Open them in waves of openWave, each stream from its own goroutine,
	// the next wave once B's handler holds the streams of the last: B
	// negotiates every inbound stream's protocol within 10 s (go-libp2p's
	// negotiation timeout), which thousands at once on a busy machine
	// overrun. All n are then open at once.
	const openWave = 500
	start := time.Now()
	streams := make([]network.Stream, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	var openFailed atomic.Int64
	for i := range n {
		if i > 0 && i%openWave == 0 {
			for srv.opened.Load()+srv.failed()+openFailed.Load() < int64(i) && ctx.Err() == nil {
				time.Sleep(time.Millisecond)
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := a.NewStream(ctx, b.ID(), manyProto)
			if err != nil {
				errs[i] = err
				openFailed.Add(1)
				return
			}
			streams[i] = s
			if _, err := s.Write([]byte{helloByte}); err != nil {
				errs[i] = err
				openFailed.Add(1)
			}
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, s := range streams {
			if s != nil {
				s.Reset()
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		failed := 0
		for _, e := range errs {
			if e != nil {
				failed++
			}
		}
		t.Fatalf("%d of %d streams failed to open, first: %v", failed, n, firstErr(errs))
	}
	select {
	case <-srv.allOpen:
	case <-ctx.Done():
		t.Fatalf("only %d of %d streams reached the handler", srv.opened.Load(), n)
	}
	openTime := time.Since(start)

	// All n are open at once, on both sides, on one TCP connection.
	if got := srv.active.Load(); got != n {
		t.Fatalf("handler holds %d streams, want %d", got, n)
	}
	if err := b.Network().ResourceManager().ViewProtocol(manyProto, func(s network.ProtocolScope) error {
		if got := s.Stat().NumStreamsInbound; got != n {
			return fmt.Errorf("B's resource manager counts %d inbound streams on %s, want %d", got, manyProto, n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	conns := a.Network().ConnsToPeer(b.ID())
	if len(conns) != 1 || !hasProtocol(conns[0].RemoteMultiaddr(), ma.P_TCP) {
		t.Fatalf("want exactly one TCP connection, got %v", conns)
	}
	if got := len(conns[0].GetStreams()); got < n {
		t.Fatalf("the connection carries %d streams, want at least %d", got, n)
	}
	heapOpen, stackOpen := memMiB()

	// One byte each way on every stream.
	start = time.Now()
	for i, s := range streams {
		if _, err := s.Write([]byte{payload(i)}); err != nil {
			t.Fatalf("stream %d: write: %v", i, err)
		}
	}
	replies := make([]byte, n)
	for i, s := range streams {
		if _, err := io.ReadFull(s, replies[i:i+1]); err != nil {
			t.Fatalf("stream %d: read: %v", i, err)
		}
		if replies[i] != ^payload(i) {
			t.Fatalf("stream %d: reply %#x, want %#x", i, replies[i], ^payload(i))
		}
	}
	if got, want := sha256.Sum256(replies), wantDigest(n); got != want {
		t.Fatalf("replies SHA-256 %x, want %x", got, want)
	}
	exchangeTime := time.Since(start)

	// Close: half-close, wait for the handler's EOF, release.
	start = time.Now()
	for i, s := range streams {
		if err := s.CloseWrite(); err != nil {
			t.Fatalf("stream %d: close write: %v", i, err)
		}
	}
	var one [1]byte
	for i, s := range streams {
		if n, err := s.Read(one[:]); n != 0 || err != io.EOF {
			t.Fatalf("stream %d: want EOF, read %d bytes, err %v", i, n, err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("stream %d: close: %v", i, err)
		}
	}
	srv.check(t)
	t.Logf("%d streams over TCP: open %v, exchange %v, close %v; in use before/with all open (both hosts): heap %.0f/%.0f MiB, stacks %.0f/%.0f MiB",
		n, openTime.Round(time.Millisecond), exchangeTime.Round(time.Millisecond), time.Since(start).Round(time.Millisecond),
		heapBefore, heapOpen, stackBefore, stackOpen)
}

// TestThousandStreamsQUIC shows what quic-go's cap of 256 concurrent
// incoming streams per connection does to 1,000 concurrent NewStream calls
// on one QUIC connection: exactly 256 open, a further NewStream waits
// (here until its context ends), and once streams close the waiting ones
// proceed, so all 1,000 complete, never more than 256 at a time.
func TestThousandStreamsQUIC(t *testing.T) {
	const n = 1000
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	a, b := connectedPair(ctx, t, ListenAddrs(ma.StringCast("/ip4/127.0.0.1/udp/0/quic-v1")), Transports(QUIC))
	srv := newHoldServer(n)
	b.SetStreamHandler(manyProto, srv.handle)

	release := make(chan struct{})
	var openedA atomic.Int64
	replies := make([]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = func() error {
				s, err := a.NewStream(ctx, b.ID(), manyProto)
				if err != nil {
					return fmt.Errorf("opening: %w", err)
				}
				defer s.Close()
				if _, err := s.Write([]byte{helloByte}); err != nil {
					s.Reset()
					return fmt.Errorf("hello: %w", err)
				}
				openedA.Add(1)
				select {
				case <-release:
				case <-ctx.Done():
					s.Reset()
					return ctx.Err()
				}
				if _, err := s.Write([]byte{payload(i)}); err != nil {
					s.Reset()
					return fmt.Errorf("payload: %w", err)
				}
				if _, err := io.ReadFull(s, replies[i:i+1]); err != nil {
					s.Reset()
					return fmt.Errorf("reply: %w", err)
				}
				if err := s.CloseWrite(); err != nil {
					s.Reset()
					return fmt.Errorf("close write: %w", err)
				}
				var one [1]byte
				if n, err := s.Read(one[:]); n != 0 || err != io.EOF {
					s.Reset()
					return fmt.Errorf("want EOF, read %d bytes, err %v", n, err)
				}
				return nil
			}()
		}()
	}
	defer func() {
		// On an early failure, let the goroutines finish before leaving.
		select {
		case <-release:
		default:
			close(release)
		}
		wg.Wait()
	}()

	waitFor(ctx, t, "256 streams held open", func() bool {
		return srv.active.Load() == quicStreamCap && openedA.Load() == quicStreamCap
	})
	if c := a.Network().ConnsToPeer(b.ID()); len(c) != 1 {
		t.Fatalf("want one QUIC connection, got %v", c)
	}
	// With 256 held, one more stream cannot open; it waits until its
	// context ends.
	probeCtx, probeCancel := context.WithTimeout(ctx, 300*time.Millisecond)
	s, err := a.NewStream(probeCtx, b.ID(), manyProto)
	probeCancel()
	if err == nil {
		s.Reset()
		t.Fatal("a 257th concurrent QUIC stream opened")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("257th stream: got %v, want it to wait until its deadline", err)
	}
	if got := openedA.Load(); got != quicStreamCap {
		t.Fatalf("%d streams open on A while 256 are held, want 256", got)
	}

	close(release)
	wg.Wait()
	if err := firstErr(errs); err != nil {
		t.Fatalf("stream failed: %v", err)
	}
	if got, want := sha256.Sum256(replies), wantDigest(n); got != want {
		t.Fatalf("replies SHA-256 %x, want %x", got, want)
	}
	srv.check(t)
	if got := srv.opened.Load(); got != n {
		t.Fatalf("handler saw %d streams, want %d", got, n)
	}
	if got := srv.maxActive.Load(); got != quicStreamCap {
		t.Fatalf("at most %d streams were open at once, want exactly %d", got, quicStreamCap)
	}
}

func firstErr(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
