package streamstest

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/p2pd/p2pd/internal/ends"
)

// testResetByService: the service aborts its connection; the client sees a
// connection reset and both bridges end with an error.
func testResetByService(t *testing.T, cfg Config) {
	tun := NewTunnel(t, func(c net.Conn) {
		buf := make([]byte, 2)
		if _, err := io.ReadFull(c, buf); err != nil {
			return
		}
		ends.Abort(c)
	}, cfg)
	c := tun.Dial(t)
	if _, err := c.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, c); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client read after the service's reset: %v, want ECONNRESET", err)
	}
	if ev := tun.HooksB.Next(t); ev.Err == nil {
		t.Error("B's bridge ended cleanly, want the service's reset")
	}
	if ev := tun.HooksA.Next(t); !errors.Is(ev.Err, network.ErrReset) {
		t.Errorf("A's bridge ended with %v, want a stream reset", ev.Err)
	}
}

// testResetByClient: the client aborts its connection; the service sees a
// connection reset and both bridges end with an error.
func testResetByClient(t *testing.T, cfg Config) {
	svcErr := make(chan error, 1)
	tun := NewTunnel(t, func(c net.Conn) {
		_, err := io.Copy(c, c)
		svcErr <- err
	}, cfg)
	c := tun.Dial(t)
	PingConn(t, c, "ping")
	ends.Abort(c)
	select {
	case err := <-svcErr:
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("service saw %v, want ECONNRESET", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the service did not see the client's reset")
	}
	if ev := tun.HooksA.Next(t); ev.Err == nil {
		t.Error("A's bridge ended cleanly, want the client's reset")
	}
	if ev := tun.HooksB.Next(t); !errors.Is(ev.Err, network.ErrReset) {
		t.Errorf("B's bridge ended with %v, want a stream reset", ev.Err)
	}
}

// testSlowReader: a client that reads slowly gets every byte in order (the
// SHA-256 matches), and meanwhile another connection of the same tunnel (on
// the same libp2p connection) keeps answering.
func testSlowReader(t *testing.T, cfg Config) {
	const size = 8 << 20
	tun := NewTunnel(t, func(c net.Conn) {
		var first [1]byte
		if _, err := io.ReadFull(c, first[:]); err != nil {
			return
		}
		if first[0] == 's' { // slow: send everything at once
			_ = SendAndClose(c.(*net.TCPConn), 11, size)
			_, _ = io.Copy(io.Discard, c)
			return
		}
		if _, err := c.Write(first[:]); err == nil {
			Echo(c)
		}
	}, cfg)
	slow := tun.Dial(t)
	if _, err := slow.Write([]byte{'s'}); err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	buf := make([]byte, 4<<10)
	var n int64
	var other *net.TCPConn
	for i := 0; ; i++ {
		m, err := slow.Read(buf)
		h.Write(buf[:m])
		n += int64(m)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("slow read after %d bytes: %v", n, err)
		}
		if i%64 == 0 {
			time.Sleep(time.Millisecond) // be slow: let the bridges back up
		}
		if i == 256 {
			other = tun.Dial(t)
			PingConn(t, other, "q")
			PingConn(t, other, "still there")
		}
	}
	if n != size || sum(h) != SumOf(11, size) {
		t.Fatalf("slow reader got %d bytes with a different SHA-256 than the service sent", n)
	}
	if other == nil {
		t.Fatal("the other connection was never tried")
	}
}

// idleStreamsWanted is how many idle streams testIdleStreams holds open.
const idleStreamsWanted = 10000

// testIdleStreams opens many connections through the tunnel, each checked
// with one echoed byte, leaves them idle, then checks every one again and
// closes them all: the registries list all and end empty.
func testIdleStreams(t *testing.T, cfg Config) {
	n := idleStreamsWanted
	if raceEnabled {
		// The race detector allows 8,128 live goroutines; 10,000 streams
		// need more (client, service and bridges, both sides).
		n = 1000
		t.Logf("%d idle streams under the race detector (its goroutine limit); %d without it", n, idleStreamsWanted)
	}
	if got := raiseFileLimit(fdsPerStream*n + 4096); got < fdsPerStream*n+4096 {
		n = max(100, (got-4096)/fdsPerStream)
		t.Logf("%d idle streams: the open-file limit is %d (raising it needs CAP_SYS_RESOURCE)", n, got)
	}
	fdsBefore := openFiles()
	tun := NewTunnel(t, Echo, cfg)
	conns := make([]*net.TCPConn, n)
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	next := make(chan int)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				c, err := net.Dial("tcp", tun.Addr)
				if err != nil {
					errs <- err
					return
				}
				conns[i] = c.(*net.TCPConn)
				if err := echoByte(c, byte(i)); err != nil {
					errs <- fmt.Errorf("connection %d: %w", i, err)
					return
				}
			}
		}()
	}
	go func() {
		defer close(next)
		for i := range n {
			select {
			case next <- i:
			case <-errs:
				return
			}
		}
	}()
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				_ = c.Close()
			}
		}
	})
	select {
	case err := <-errs:
		_, closedA := tun.HooksA.Snapshot()
		_, closedB := tun.HooksB.Snapshot()
		for _, ev := range append(closedA, closedB...) {
			if ev.Err != nil {
				t.Logf("a bridge ended early: %v", ev.Err)
				break
			}
		}
		t.Fatal(err)
	default:
	}
	WaitFor(t, fmt.Sprintf("%d streams in each registry", n), func() bool {
		return tun.RegA.Len() == n && tun.RegB.Len() == n
	})
	t.Logf("%d idle streams open, %.1f file descriptors each", n, float64(openFiles()-fdsBefore)/float64(n))
	for i, c := range conns {
		if err := echoByte(c, byte(i+1)); err != nil {
			t.Fatalf("idle connection %d: %v", i, err)
		}
	}
	for _, c := range conns {
		_ = c.Close()
	}
	WaitFor(t, "both registries to empty", func() bool { return tun.RegA.Len() == 0 && tun.RegB.Len() == 0 })
}

// fdsPerStream is how many file descriptors one stream of the tunnel holds
// in this process, as measured (the test logs it): the client's, the
// service's and the two bridged local connections, and more. With the
// usual limit of 20,000 that makes about 2,600 streams, not 10,000, unless
// the test may raise its limit (CAP_SYS_RESOURCE).
const fdsPerStream = 6

// openFiles counts the open file descriptors of the process (-1 if unknown).
func openFiles() int {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(fds)
}

// echoByte sends b over c and waits for it to come back.
func echoByte(c net.Conn, b byte) error {
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte{b}); err != nil {
		return err
	}
	var got [1]byte
	if _, err := io.ReadFull(c, got[:]); err != nil {
		return err
	}
	if got[0] != b {
		return fmt.Errorf("echo returned %d, want %d", got[0], b)
	}
	return nil
}

// raiseFileLimit raises the open-file limit of the process to want if it
// can and returns the limit in force.
func raiseFileLimit(want int) int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	if lim.Cur >= uint64(want) {
		return int(lim.Cur)
	}
	raised := syscall.Rlimit{Cur: uint64(want), Max: max(lim.Max, uint64(want))}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err == nil {
		return want
	}
	raised = syscall.Rlimit{Cur: lim.Max, Max: lim.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err == nil {
		return int(lim.Max)
	}
	return int(lim.Cur)
}
