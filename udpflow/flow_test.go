package udpflow

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testTimeout bounds every wait so a bug fails a test instead of hanging
// it; it is never a pass/fail threshold.
const testTimeout = 30 * time.Second

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func listen(t testing.TB, network, addr string, opts ...Option) *Listener {
	t.Helper()
	l, err := Listen(t.Context(), network, addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func dialUDP(t testing.TB, network string, to net.Addr) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP(network, nil, to.(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	SetBuffers(c, DefaultSocketBuffer)
	t.Cleanup(func() { c.Close() })
	return c
}

func accept(t testing.TB, l *Listener) *Flow {
	t.Helper()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := l.Accept()
		ch <- res{c, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatal(r.err)
		}
		f := r.c.(*Flow)
		t.Cleanup(func() { f.Close() })
		return f
	case <-time.After(testTimeout):
		l.Close()
		t.Fatal("no flow accepted")
		return nil
	}
}

// frame is the stream form of datagram d.
func frame(d []byte) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(d))), d...)
}

// readFrames reads n frames from f with reads of the given sizes (cycled).
func readFrames(t testing.TB, f *Flow, n int, sizes ...int) [][]byte {
	t.Helper()
	var stream []byte
	var out [][]byte
	for i := 0; len(out) < n; i++ {
		buf := make([]byte, sizes[i%len(sizes)])
		_ = f.SetReadDeadline(time.Now().Add(testTimeout))
		k, err := f.Read(buf)
		if err != nil {
			t.Fatalf("reading frame %d: %v", len(out), err)
		}
		stream = append(stream, buf[:k]...)
		for len(stream) >= 2 {
			l := int(binary.BigEndian.Uint16(stream))
			if len(stream) < 2+l {
				break
			}
			out = append(out, stream[2:2+l])
			stream = stream[2+l:]
		}
	}
	if len(stream) != 0 {
		t.Fatalf("%d bytes beyond the %d frames", len(stream), n)
	}
	return out
}

// pump copies src to dst with writes of the given sizes (cycled), as a
// stream would cut them, until src ends.
func pump(dst io.Writer, src io.Reader, sizes ...int) error {
	for i := 0; ; i++ {
		buf := make([]byte, sizes[i%len(sizes)])
		n, err := src.Read(buf)
		for p := buf[:n]; len(p) > 0; {
			c := min(len(p), sizes[(i+1)%len(sizes)])
			if _, werr := dst.Write(p[:c]); werr != nil {
				return werr
			}
			p = p[c:]
		}
		if err != nil {
			return err
		}
	}
}

// TestFlowsCarryDatagramsWhole joins a forward's flow and a dialled flow
// back to back, as the two ends of a stream, with reads and writes cut at
// odd sizes: every datagram size from 0 to MaxDatagram reaches an echo
// service and comes back whole, with the counts to match.
func TestFlowsCarryDatagramsWhole(t *testing.T) {
	echo, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	SetBuffers(echo, DefaultSocketBuffer)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer echo.Close()
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, readBufSize)
		for {
			n, from, err := echo.ReadFromUDP(buf)
			if err != nil {
				return
			}
			_, _ = echo.WriteToUDP(buf[:n], from)
		}
	}()

	l := listen(t, "udp4", "127.0.0.1:0")
	client := dialUDP(t, "udp4", l.Addr())
	sizes := []int{0, 1, 2, 3, 511, 512, 513, 1200, 1472, 8192, 40000, MaxDatagram - 1, MaxDatagram}
	if _, err := client.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	near := accept(t, l)
	far, err := Dial(t.Context(), "udp4", echo.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { far.Close() })
	wg.Add(2)
	go func() { defer wg.Done(); _ = pump(far, near, 1, 7, 512, 65536) }()
	go func() { defer wg.Done(); _ = pump(near, far, 3, 70000, 2) }()
	defer far.Close()
	defer near.Close()

	buf := make([]byte, readBufSize)
	check := func(want []byte) {
		t.Helper()
		_ = client.SetReadDeadline(time.Now().Add(testTimeout))
		n, err := client.Read(buf)
		if err != nil || !bytes.Equal(buf[:n], want) {
			t.Fatalf("echo of %d bytes: got %d bytes, %v", len(want), n, err)
		}
	}
	check([]byte("hello"))
	var total uint64 = 5
	for i, n := range sizes {
		d := bytes.Repeat([]byte{byte(i + 1)}, n)
		if _, err := client.Write(d); err != nil {
			t.Fatalf("sending %d bytes: %v", n, err)
		}
		check(d)
		total += uint64(n)
	}
	want := uint64(len(sizes) + 1)
	waitFor(t, "the counts", func() bool {
		c := near.DatagramCounts()
		return c.In == want && c.Out == want && c.BytesIn == total && c.BytesOut == total && c.Dropped == 0
	})
	if c := far.DatagramCounts(); c.In != want || c.Out != want || c.Dropped != 0 {
		t.Errorf("far counts %+v, want %d each way", c, want)
	}
}

// TestQueueDropsOldest checks that a flow whose reader is slower than its
// sender keeps the newest datagrams and counts the ones it dropped.
func TestQueueDropsOldest(t *testing.T) {
	target, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	var hooked atomic.Int32
	f, err := Dial(t.Context(), "udp4", target.LocalAddr().String(),
		WithQueue(4, MaxDatagram), WithErrorHook(func(error) { hooked.Add(1) }))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i := range 10 {
		if _, err := target.WriteToUDP([]byte{byte(i)}, f.LocalAddr().(*net.UDPAddr)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "6 drops", func() bool { return f.DatagramCounts().Dropped == 6 })
	got := readFrames(t, f, 4, 1)
	for i, d := range got {
		if len(d) != 1 || d[0] != byte(6+i) {
			t.Fatalf("datagram %d = %v, want [%d] (the newest kept)", i, d, 6+i)
		}
	}
	if n := hooked.Load(); n != 1 {
		t.Errorf("error hook called %d times, want once per flow", n)
	}
}

// TestTooLargeDropped checks that a datagram over MaxDatagram (possible
// over IPv6) is dropped, counted and reported once per flow, and the flow
// goes on.
func TestTooLargeDropped(t *testing.T) {
	var reports []string
	var mu sync.Mutex
	l, err := Listen(t.Context(), "udp6", "[::1]:0", WithErrorHook(func(err error) {
		mu.Lock()
		reports = append(reports, err.Error())
		mu.Unlock()
	}))
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer l.Close()
	client := dialUDP(t, "udp6", l.Addr())
	for _, n := range []int{MaxDatagram + 20, 10, MaxDatagram + 1, 11} {
		if _, err := client.Write(make([]byte, n)); err != nil {
			t.Fatalf("sending %d bytes: %v", n, err)
		}
	}
	f := accept(t, l)
	got := readFrames(t, f, 2, 65536)
	if len(got[0]) != 10 || len(got[1]) != 11 {
		t.Errorf("frames of %d and %d bytes, want 10 and 11", len(got[0]), len(got[1]))
	}
	if c := f.DatagramCounts(); c.Dropped != 2 || c.Out != 2 {
		t.Errorf("counts %+v, want 2 dropped and 2 out", c)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reports) != 1 || !strings.Contains(reports[0], "dropped a datagram of 65527 bytes") {
		t.Errorf("reports %q, want one about the 65527-byte datagram", reports)
	}
}

// TestIdleEndsFlow checks that an idle flow's Read ends with io.EOF and
// that the client's next datagram starts a new flow.
func TestIdleEndsFlow(t *testing.T) {
	l := listen(t, "udp4", "127.0.0.1:0", WithIdleTimeout(20*time.Millisecond))
	client := dialUDP(t, "udp4", l.Addr())
	if _, err := client.Write([]byte("one")); err != nil {
		t.Fatal(err)
	}
	first := accept(t, l)
	if got := readFrames(t, first, 1, 64); string(got[0]) != "one" {
		t.Fatalf("first frame %q", got[0])
	}
	_ = first.SetReadDeadline(time.Now().Add(testTimeout))
	if n, err := first.Read(make([]byte, 64)); n != 0 || err != io.EOF {
		t.Fatalf("Read after the idle timeout = %d, %v; want io.EOF", n, err)
	}
	// The flow still delivers what its stream brings until it is closed.
	if _, err := first.Write(frame([]byte("late reply"))); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	_ = client.SetReadDeadline(time.Now().Add(testTimeout))
	if n, err := client.Read(buf); err != nil || string(buf[:n]) != "late reply" {
		t.Fatalf("late reply: %q, %v", buf[:n], err)
	}
	if _, err := client.Write([]byte("two")); err != nil {
		t.Fatal(err)
	}
	second := accept(t, l)
	if second == first {
		t.Fatal("the same flow came back after its end")
	}
	if got := readFrames(t, second, 1, 64); string(got[0]) != "two" {
		t.Fatalf("second flow's frame %q", got[0])
	}
}

// TestListenerCloseKeepsAcceptedFlows checks that closing a Listener stops
// new flows but not accepted ones, and frees the port after the last.
func TestListenerCloseKeepsAcceptedFlows(t *testing.T) {
	l := listen(t, "udp4", "127.0.0.1:0")
	client := dialUDP(t, "udp4", l.Addr())
	if _, err := client.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	f := accept(t, l)
	readFrames(t, f, 1, 64)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
	}
	if _, err := client.Write([]byte("still here")); err != nil {
		t.Fatal(err)
	}
	if got := readFrames(t, f, 1, 64); string(got[0]) != "still here" {
		t.Fatalf("frame after Close %q", got[0])
	}
	if _, err := f.Write(frame([]byte("reply"))); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	_ = client.SetReadDeadline(time.Now().Add(testTimeout))
	if n, err := client.Read(buf); err != nil || string(buf[:n]) != "reply" {
		t.Fatalf("reply after Close: %q, %v", buf[:n], err)
	}
	f.Close()
	pc, err := net.ListenPacket("udp4", l.Addr().String())
	if err != nil {
		t.Fatalf("the port is still taken after the last flow ended: %v", err)
	}
	pc.Close()
}

// TestFlowErrors checks a frame over the limit, a passed read deadline and
// use after Close.
func TestFlowErrors(t *testing.T) {
	target, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	f, err := Dial(t.Context(), "udp4", target.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte{0xff, 0xff}); !errors.Is(err, errFrameTooLarge) {
		t.Errorf("Write of a 65535-byte frame header: %v, want errFrameTooLarge", err)
	}
	_ = f.SetReadDeadline(time.Now().Add(-time.Second))
	if _, err := f.Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Read past the deadline: %v, want os.ErrDeadlineExceeded", err)
	}
	f.Close()
	f.Close()
	if _, err := f.Read(make([]byte, 8)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read after Close: %v, want net.ErrClosed", err)
	}
	if _, err := f.Write(frame([]byte("x"))); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after Close: %v, want net.ErrClosed", err)
	}
}

func TestOptions(t *testing.T) {
	for _, tc := range []struct {
		opt  Option
		want string
	}{
		{WithIdleTimeout(0), "UDP idle timeout must be positive"},
		{WithQueue(0, MaxDatagram), "UDP queue length must be positive"},
		{WithQueue(1, 100), "UDP queue must hold at least one datagram of 65507 bytes"},
		{WithSocketBuffer(-1), "UDP socket buffer size must not be negative"},
		{WithErrorHook(nil), "UDP error hook is nil"},
	} {
		if _, err := Listen(t.Context(), "udp4", "127.0.0.1:0", tc.opt); err == nil || err.Error() != tc.want {
			t.Errorf("Listen with a bad option: %v, want %q", err, tc.want)
		}
	}
}

// TestIdleWaitsForTheStream checks that a flow whose datagrams wait for a
// stream that is slow to open does not end as idle before they are taken.
func TestIdleWaitsForTheStream(t *testing.T) {
	const idle = 10 * time.Millisecond
	l := listen(t, "udp4", "127.0.0.1:0", WithIdleTimeout(idle))
	client := dialUDP(t, "udp4", l.Addr())
	if _, err := client.Write([]byte("waiting")); err != nil {
		t.Fatal(err)
	}
	f := accept(t, l)
	time.Sleep(10 * idle) // the stream is being opened
	// Had the flow ended as idle, this would start another one.
	if _, err := client.Write([]byte("more")); err != nil {
		t.Fatal(err)
	}
	if got := readFrames(t, f, 2, 64); string(got[0]) != "waiting" || string(got[1]) != "more" {
		t.Fatalf("frames %q, want both datagrams in the one flow", got)
	}
	_ = f.SetReadDeadline(time.Now().Add(testTimeout))
	if n, err := f.Read(make([]byte, 64)); n != 0 || err != io.EOF {
		t.Fatalf("Read once idle = %d, %v; want io.EOF", n, err)
	}
}
