package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/p2pd/p2pd/listeners"
)

// writeSize is the size of the client's writes in bulk transfers.
const writeSize = 256 << 10

// payload is the data bulk transfers send, repeated.
var payload = func() []byte {
	b := make([]byte, writeSize)
	_, _ = rand.NewChaCha8([32]byte{1}).Read(b)
	return b
}()

var dialer = net.Dialer{Timeout: 30 * time.Second}

// sendBulk sends size bytes to the sink at addr, announced by an 8-byte
// big-endian length, and waits for the sink's count. It returns the time
// from dialing to the count. The length prefix, rather than a half-close,
// marks the end of the data: kubo's forward closes both directions as soon
// as either ends, so a half-close would cut the count off on that path.
func sendBulk(ctx context.Context, addr string, size int64) (time.Duration, error) {
	t0 := time.Now()
	c, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()
	var hdr [8]byte
	binary.BigEndian.PutUint64(hdr[:], uint64(size))
	if _, err := c.Write(hdr[:]); err != nil {
		return 0, fmt.Errorf("sending to %s: %w", addr, err)
	}
	for left := size; left > 0; {
		n, err := c.Write(payload[:min(int64(len(payload)), left)])
		left -= int64(n)
		if err != nil {
			return 0, fmt.Errorf("sending to %s: %w", addr, err)
		}
	}
	var ack [8]byte
	if _, err := io.ReadFull(c, ack[:]); err != nil {
		return 0, fmt.Errorf("reading the sink's count from %s: %w", addr, err)
	}
	d := time.Since(t0)
	if got := int64(binary.BigEndian.Uint64(ack[:])); got != size {
		return 0, fmt.Errorf("the sink at %s got %d bytes, want %d", addr, got, size)
	}
	return d, nil
}

// sendParallel sends size bytes in total over n connections at once and
// returns the time until the last count came back.
func sendParallel(ctx context.Context, addr string, size int64, n int) (time.Duration, error) {
	t0 := time.Now()
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := sendBulk(ctx, addr, size/int64(n))
			errs <- err
		}()
	}
	var first error
	for range n {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return time.Since(t0), first
}

// roundTrips sends count messages of size bytes to the echo at addr over one
// connection, one at a time, and returns each round trip's duration. The
// first warm messages are not counted.
func roundTrips(ctx context.Context, addr string, size, warm, count int) ([]time.Duration, error) {
	c, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()
	msg := payload[:size]
	buf := make([]byte, size)
	out := make([]time.Duration, 0, count)
	for i := range warm + count {
		t0 := time.Now()
		if _, err := c.Write(msg); err != nil {
			return nil, err
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			return nil, err
		}
		if i >= warm {
			out = append(out, time.Since(t0))
		}
	}
	return out, nil
}

// firstByte dials the echo at addr, sends one byte and returns the time from
// the dial to the byte coming back.
func firstByte(ctx context.Context, addr string) (time.Duration, error) {
	t0 := time.Now()
	c, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte{'x'}); err != nil {
		return 0, err
	}
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return 0, fmt.Errorf("waiting for the first byte from %s: %w", addr, err)
	}
	return time.Since(t0), nil
}

// echoOnce sends one byte over c and waits up to within for it to come back.
func echoOnce(c net.Conn, b byte, within time.Duration) error {
	_ = c.SetDeadline(time.Now().Add(within))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte{b}); err != nil {
		return err
	}
	var got [1]byte
	if _, err := io.ReadFull(c, got[:]); err != nil {
		return err
	}
	if got[0] != b {
		return fmt.Errorf("echo returned %q, want %q", got[0], b)
	}
	return nil
}

// openIdle opens n connections to the echo at addr, at most par at a time,
// checks each with one byte echoed within the given time and leaves them
// open. It returns the connections that work and how many did not, with
// the first error of those.
func openIdle(ctx context.Context, addr string, n, par int, within time.Duration) ([]net.Conn, int, error) {
	var (
		mu    sync.Mutex // guards conns
		conns []net.Conn
	)
	failed, first := eachParallel(ctx, n, par, func(int) error {
		c, err := dialer.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		if err := echoOnce(c, 'i', within); err != nil {
			c.Close()
			return err
		}
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
		return nil
	})
	return conns, failed, first
}

// checkIdle echoes one byte over every connection, par at a time, and
// returns how many failed and the first error.
func checkIdle(conns []net.Conn, par int) (int, error) {
	return eachParallel(context.Background(), len(conns), par, func(i int) error {
		return echoOnce(conns[i], 'c', 30*time.Second)
	})
}

// eachParallel runs f for 0..n-1 in par goroutines until done or ctx ends,
// and returns how many calls failed and the first error.
func eachParallel(ctx context.Context, n, par int, f func(i int) error) (int, error) {
	var (
		mu     sync.Mutex // guards first
		first  error
		failed atomic.Int64
		next   atomic.Int64
		wg     sync.WaitGroup
	)
	for range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				if err := f(int(i)); err != nil {
					failed.Add(1)
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return int(failed.Load()), first
}

// closeAll closes conns.
func closeAll(conns []net.Conn) {
	for _, c := range conns {
		_ = c.Close()
	}
}

// median returns the median of ds (0 for none).
func medianDur(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

var errNoSamples = errors.New("no samples")

// probeWaiting sees what one more connection to the echo at addr gets
// while the connections in open are held: first left to wait (up to the
// forward's dial timeout and then some), then with one of the open
// connections closed a second after it was sent its byte. It closes that
// connection and removes it from open.
func probeWaiting(ctx context.Context, addr string, open *[]net.Conn) []Probe {
	var out []Probe
	for _, closeOne := range []bool{false, true} {
		p := Probe{What: fmt.Sprintf("one more connection, the %d others held open", len(*open))}
		wait := listenersDialTimeout + 15*time.Second
		if closeOne {
			p.What = fmt.Sprintf("one more connection, one of the %d others closed 1 s after it", len(*open))
			wait = 15 * time.Second
		}
		logf("probe: %s (waiting up to %s)", p.What, wait)
		t0 := time.Now()
		c, err := dialer.DialContext(ctx, "tcp", addr)
		if err != nil {
			p.Outcome = fmt.Sprintf("dial failed: %v", err)
			out = append(out, p)
			continue
		}
		if closeOne {
			time.AfterFunc(time.Second, func() { _ = (*open)[0].Close() })
		}
		err = echoOnce(c, 'p', wait)
		p.Seconds = time.Since(t0).Seconds()
		c.Close()
		var ne net.Error
		switch {
		case err == nil:
			p.Outcome = "answered"
		case errors.As(err, &ne) && ne.Timeout():
			p.Outcome = "no answer, connection still open"
		case errors.Is(err, io.EOF):
			p.Outcome = "closed by the forward"
		case errors.Is(err, syscall.ECONNRESET):
			p.Outcome = "reset by the forward"
		default:
			p.Outcome = err.Error()
		}
		logf("probe: %s after %.1f s", p.Outcome, p.Seconds)
		out = append(out, p)
		if closeOne {
			*open = (*open)[1:]
		}
		if ctx.Err() != nil {
			break
		}
	}
	return out
}

// listenersDialTimeout is p2pd's default dial timeout of a forward's
// connection (listeners.DefaultDialTimeout).
const listenersDialTimeout = listeners.DefaultDialTimeout
