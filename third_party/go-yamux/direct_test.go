package yamux

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// buffersConn is a test connection that implements BuffersWriter by
// joining the buffers, and counts how often that was used.
type buffersConn struct {
	net.Conn
	calls atomic.Int64
}

func (c *buffersConn) WriteBuffers(bufs [][]byte) (int, error) {
	c.calls.Add(1)
	return c.Conn.Write(bytes.Join(bufs, nil))
}

// TestDirectWritesKeepOrder sends random data on many streams at once,
// each writer mixing write sizes, so that frames leave both from the
// writers' goroutines and through the send loop, interleaved with window
// updates. Every stream must arrive byte-exact.
func TestDirectWritesKeepOrder(t *testing.T) {
	for _, withBuffers := range []bool{false, true} {
		name := "copying"
		if withBuffers {
			name = "BuffersWriter"
		}
		t.Run(name, func(t *testing.T) {
			c1, c2 := testConn()
			var bc *buffersConn
			if withBuffers {
				bc = &buffersConn{Conn: c1}
				c1 = bc
			}
			conf := testConfNoKeepAlive()
			conf.ConnectionWriteTimeout = time.Minute // slow under -race, not stuck
			client, err := Client(c1, conf, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			server, err := Server(c2, conf, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer server.Close()

			const streams = 16
			const size = 3 << 20
			sums := make(chan [32]byte, streams)
			var wg sync.WaitGroup
			wg.Add(1)
			go func() { // the receiving side
				defer wg.Done()
				var rwg sync.WaitGroup
				for range streams {
					s, err := server.AcceptStream()
					if err != nil {
						t.Error(err)
						return
					}
					rwg.Add(1)
					go func() {
						defer rwg.Done()
						h := sha256.New()
						if _, err := io.Copy(h, s); err != nil {
							t.Error(err)
						}
						var sum [32]byte
						copy(sum[:], h.Sum(nil))
						sums <- sum
						s.Close()
					}()
				}
				rwg.Wait()
			}()

			want := make(map[[32]byte]int)
			var mu sync.Mutex
			for i := range streams {
				s, err := client.OpenStream(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := rand.New(rand.NewSource(int64(i)))
					data := make([]byte, size)
					r.Read(data)
					for off := 0; off < len(data); {
						n := 1 + r.Intn(100<<10)
						if n > len(data)-off {
							n = len(data) - off
						}
						if _, err := s.Write(data[off : off+n]); err != nil {
							t.Error(err)
							return
						}
						off += n
					}
					if err := s.CloseWrite(); err != nil {
						t.Error(err)
					}
					mu.Lock()
					want[sha256.Sum256(data)]++
					mu.Unlock()
				}()
			}
			wg.Wait()
			close(sums)
			got := make(map[[32]byte]int)
			for s := range sums {
				got[s]++
			}
			if len(got) != streams || len(want) != streams {
				t.Fatalf("got %d distinct stream digests, sent %d, want %d", len(got), len(want), streams)
			}
			for sum, n := range want {
				if got[sum] != n {
					t.Fatalf("a stream's data did not arrive intact (sha256 %x)", sum[:8])
				}
			}
			// Under contention frames may all have been queued; one
			// writer alone must write its own frames.
			if withBuffers {
				before := bc.calls.Load()
				s, err := client.OpenStream(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				for client.queued.Load() != 0 {
					time.Sleep(time.Millisecond)
				}
				go func() {
					if s, err := server.AcceptStream(); err == nil {
						io.Copy(io.Discard, s)
					}
				}()
				if _, err := s.Write(make([]byte, 1000)); err != nil {
					t.Fatal(err)
				}
				if bc.calls.Load() == before {
					t.Fatal("a lone writer's frame was not written with WriteBuffers")
				}
			}
		})
	}
}

// brokenConn fails every WriteBuffers, as a connection that broke would.
type brokenConn struct {
	net.Conn
}

var errBroken = errors.New("broken connection")

func (c *brokenConn) WriteBuffers([][]byte) (int, error) { return 0, errBroken }

// TestDirectWriteFailureEndsSession checks that a frame that a writer could
// not write itself ends the session, as a failed write of the send loop
// does, and that the writer learns why.
func TestDirectWriteFailureEndsSession(t *testing.T) {
	c1, c2 := testConn()
	conf := testConfNoKeepAlive()
	client, err := Client(&brokenConn{Conn: c1}, conf, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := Server(c2, conf, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()

	s, err := client.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := server.AcceptStream(); err != nil {
		t.Fatal(err)
	}
	// The stream's opening frame went through the send loop: wait until
	// it is written, so that the next frame is written by the caller.
	for client.queued.Load() != 0 {
		time.Sleep(time.Millisecond)
	}
	if _, err := s.Write([]byte("lost")); !errors.Is(err, errBroken) {
		t.Fatalf("write on a broken connection: got %v, want %v", err, errBroken)
	}
	select {
	case <-client.CloseChan():
	case <-time.After(10 * time.Second):
		t.Fatal("the session did not end after a failed write")
	}
}

// TestWindowUpdateCutShortByDeadline: a read whose deadline has passed
// still hands out buffered data, but the window update it then owes the
// peer cannot be sent. That credit must not be lost: once the reader reads
// on without a deadline, the peer must be able to send the rest.
func TestWindowUpdateCutShortByDeadline(t *testing.T) {
	conf := testConfNoKeepAlive()
	conf.ConnectionWriteTimeout = time.Minute // slow under -race, not stuck
	client, server := testClientServerConfig(conf)
	defer client.Close()
	defer server.Close()

	const size = 4 * initialStreamWindow
	data := make([]byte, size)
	rand.New(rand.NewSource(1)).Read(data)
	cs, err := client.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		if _, err := cs.Write(data); err != nil {
			t.Error(err)
		}
		cs.CloseWrite()
	}()
	ss, err := server.AcceptStream()
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()

	// Twice: read just short of owing the peer an update, then read on
	// with a deadline that has passed. Each lost update would cost the
	// peer half the window; two would leave it none.
	got := make([]byte, 0, size)
	buf := make([]byte, initialStreamWindow/2-1)
	for range 2 {
		if _, err := io.ReadFull(ss, buf); err != nil {
			t.Fatal(err)
		}
		got = append(got, buf...)
		ss.SetReadDeadline(time.Now().Add(-time.Second))
		n, _ := ss.Read(buf[:1])
		got = append(got, buf[:n]...)
		ss.SetReadDeadline(time.Time{})
	}

	type result struct {
		rest []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		rest, err := io.ReadAll(ss)
		done <- result{rest, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatal(r.err)
		}
		got = append(got, r.rest...)
	case <-time.After(30 * time.Second):
		ss.Reset()
		t.Fatalf("stalled after %d of %d bytes: a window update cut short by the deadline was lost", len(got), size)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("received %d bytes that differ from the %d sent", len(got), size)
	}
}
