package streams

import (
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/p2pd/p2pd/internal/ends"
)

// plainBufferSize is the copy buffer of each direction of a plain bridge,
// held for the bridge's whole life: 10,000 idle plain bridges hold 320 MiB
// of buffers, which is what the fast bridge (package fastpath) avoids.
const plainBufferSize = 16 << 10

// plainBridge is the reference bridge: one goroutine per direction, each
// copying until its source ends. A clean end of one source half-closes the
// other side and the other direction goes on; the second clean end closes
// both sides. The first error, or Reset, resets the stream and aborts the
// local connection, which ends both loops.
type plainBridge struct {
	s     network.Stream
	c     net.Conn
	spawn func(func())
	done  func(error)

	bytesIn  atomic.Uint64 // stream -> local connection
	bytesOut atomic.Uint64 // local connection -> stream

	// localClosed is set when the local connection had to be closed
	// entirely because it cannot half-close.
	localClosed atomic.Bool

	mu          sync.Mutex // guards ended, cleanHalves, err
	ended       bool       // the one teardown happened
	cleanHalves int
	err         error

	directions atomic.Int32 // directions not yet over
}

func newPlainBridge(s network.Stream, c net.Conn, spawn func(func()), done func(error)) *plainBridge {
	return &plainBridge{s: s, c: c, spawn: spawn, done: done}
}

// Start starts both copy loops.
func (b *plainBridge) Start() {
	b.directions.Store(2)
	b.spawn(func() { b.direction(b.copyToPeer()) })
	b.spawn(func() { b.direction(b.copyFromPeer()) })
}

// Reset tears the bridge down with reason unless it has already ended.
func (b *plainBridge) Reset(reason error) { b.halfDone(reason) }

// Bytes returns the bytes copied so far from and to the peer.
func (b *plainBridge) Bytes() (in, out uint64) { return b.bytesIn.Load(), b.bytesOut.Load() }

// copyToPeer copies local -> stream and half-closes the stream at the end.
func (b *plainBridge) copyToPeer() error {
	buf := make([]byte, plainBufferSize)
	for {
		n, err := b.c.Read(buf)
		if n > 0 {
			m, werr := b.s.Write(buf[:n])
			b.bytesOut.Add(uint64(m))
			if werr != nil {
				return fmt.Errorf("writing to the peer: %w", werr)
			}
		}
		if err != nil && b.localClosed.Load() {
			err = io.EOF // we closed it ourselves: the end of this direction
		}
		switch {
		case err == nil:
		case err == io.EOF:
			if err := b.s.CloseWrite(); err != nil {
				return fmt.Errorf("closing the write half of the stream: %w", err)
			}
			return nil
		default:
			return fmt.Errorf("reading from the local connection: %w", err)
		}
	}
}

// copyFromPeer copies stream -> local and half-closes the local connection
// at the end.
func (b *plainBridge) copyFromPeer() error {
	buf := make([]byte, plainBufferSize)
	for {
		n, err := b.s.Read(buf)
		if n > 0 {
			m, werr := b.c.Write(buf[:n])
			b.bytesIn.Add(uint64(m))
			if werr != nil {
				return fmt.Errorf("writing to the local connection: %w", werr)
			}
		}
		switch {
		case err == nil:
		case err == io.EOF: // exactly: a reset of a closed session wraps io.EOF
			if err := ends.ConfirmEOF(b.s, buf); err != nil {
				return fmt.Errorf("reading from the peer: %w", err)
			}
			b.localClosed.Store(!ends.CanHalfClose(b.c))
			if err := ends.CloseWrite(b.c); err != nil {
				return fmt.Errorf("closing the write half of the local connection: %w", err)
			}
			return nil
		default:
			return fmt.Errorf("reading from the peer: %w", err)
		}
	}
}

// halfDone records the end of one direction (err nil: a clean end). The
// first error, or the second clean end, tears the bridge down.
func (b *plainBridge) halfDone(err error) {
	b.mu.Lock()
	if b.ended {
		b.mu.Unlock()
		return
	}
	if err != nil {
		b.ended, b.err = true, err
		b.mu.Unlock()
		_ = b.s.Reset()
		ends.Abort(b.c)
		return
	}
	b.cleanHalves++
	if b.cleanHalves < 2 {
		b.mu.Unlock()
		return
	}
	b.ended = true
	b.mu.Unlock()
	if err := b.s.Close(); err != nil {
		log.Debugw("closing stream", "err", err)
	}
	if err := b.c.Close(); err != nil && !b.localClosed.Load() {
		log.Debugw("closing local connection", "err", err)
	}
}

// direction ends one copy loop; the last one reports the bridge done.
func (b *plainBridge) direction(err error) {
	b.halfDone(err)
	if b.directions.Add(-1) == 0 {
		b.mu.Lock()
		err := b.err
		b.mu.Unlock()
		b.done(err)
	}
}
