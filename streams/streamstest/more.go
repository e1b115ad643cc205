package streamstest

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
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

// testSlowReader: a reader that reads slowly, and for a while not at all,
// gets every byte in order (the SHA-256 matches), whichever end it is, and
// while it does not read another connection of the same tunnel (on the same
// libp2p connection) keeps answering.
func testSlowReader(t *testing.T, cfg Config) {
	const size = 8 << 20
	t.Run("client reads slowly", func(t *testing.T) {
		tun, stall, checkOther := slowReaderTunnel(t, cfg, size)
		slow := tun.Dial(t)
		if _, err := slow.Write([]byte{'s'}); err != nil {
			t.Fatal(err)
		}
		got := make(chan error, 1)
		go func() {
			s, n, err := slowRead(slow, stall)
			if err == nil && (n != size || s != SumOf(11, size)) {
				err = fmt.Errorf("got %d bytes with a different SHA-256 than the service sent", n)
			}
			got <- err
		}()
		checkOther()
		if err := <-got; err != nil {
			t.Fatalf("slow client: %v", err)
		}
	})
	t.Run("service reads slowly", func(t *testing.T) {
		tun, _, checkOther := slowReaderTunnel(t, cfg, size)
		up := tun.Dial(t)
		sent := make(chan error, 1)
		go func() {
			if _, err := up.Write([]byte{'u'}); err != nil {
				sent <- err
				return
			}
			sent <- SendAndClose(up, 12, size)
		}()
		checkOther()
		if err := <-sent; err != nil {
			t.Fatalf("client: %v", err)
		}
		var s [32]byte
		if _, err := io.ReadFull(up, s[:]); err != nil {
			t.Fatalf("reading the service's SHA-256: %v", err)
		}
		if s != SumOf(12, size) {
			t.Fatal("the slow service got data with a different SHA-256 than the client sent")
		}
	})
}

// slowReaderTunnel starts the tunnel of testSlowReader. Its service plays
// the slow reader after a 'u' (it then answers the SHA-256 of what it
// read), sends size bytes of Source(11) after an 's', and echoes after
// anything else. A slow reader calls stall after its first MiB, which
// blocks until checkOther has checked that another connection answers.
func slowReaderTunnel(t *testing.T, cfg Config, size int64) (tun *Tunnel, stall, checkOther func()) {
	reached, checked := make(chan struct{}), make(chan struct{})
	stall = func() {
		close(reached)
		<-checked
	}
	tun = NewTunnel(t, func(c net.Conn) {
		var first [1]byte
		if _, err := io.ReadFull(c, first[:]); err != nil {
			return
		}
		switch first[0] {
		case 's':
			_ = SendAndClose(c.(*net.TCPConn), 11, size)
			_, _ = io.Copy(io.Discard, c)
		case 'u':
			s, _, err := slowRead(c, stall)
			if err == nil {
				_, _ = c.Write(s[:])
			}
		default:
			if _, err := c.Write(first[:]); err == nil {
				Echo(c)
			}
		}
	}, cfg)
	var once sync.Once
	release := func() { once.Do(func() { close(checked) }) }
	t.Cleanup(release) // before the tunnel's: a stalled reader would keep it open
	checkOther = func() {
		t.Helper()
		defer release()
		select {
		case <-reached:
		case <-time.After(time.Minute):
			t.Fatal("the slow reader never got 1 MiB")
		}
		other := tun.Dial(t)
		PingConn(t, other, "q")
		PingConn(t, other, "still there")
	}
	return tun, stall, checkOther
}

// slowRead reads r to EOF in small reads with pauses, so that the bridges
// back up, and calls stall once after the first MiB (stall may block, which
// stops reading altogether for a while). It returns the SHA-256 and the
// count of what it read.
func slowRead(r io.Reader, stall func()) ([32]byte, int64, error) {
	h := sha256.New()
	buf := make([]byte, 4<<10)
	var n int64
	stalled := false
	for i := 0; ; i++ {
		m, err := r.Read(buf)
		h.Write(buf[:m])
		n += int64(m)
		if err == io.EOF {
			return sum(h), n, nil
		}
		if err != nil {
			return sum(h), n, fmt.Errorf("read after %d bytes: %w", n, err)
		}
		if i%64 == 0 {
			time.Sleep(time.Millisecond)
		}
		if n >= 1<<20 && !stalled {
			stalled = true
			stall()
		}
	}
}
