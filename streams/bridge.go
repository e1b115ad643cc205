package streams

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/libp2p/go-libp2p/core/network"
)

// bridge copies bytes between one libp2p stream and one local connection.
// Its two copy loops run in goroutines owned by the registry; the loop that
// ends last finishes the bridge (registry removal, unprotect, OnClose).
type bridge struct {
	reg  *Registry
	info Info // static fields only; the counters live below
	s    network.Stream
	c    net.Conn

	bytesIn  atomic.Uint64 // stream -> local connection
	bytesOut atomic.Uint64 // local connection -> stream

	fromPeer  smallFirstReader
	fromLocal chunkReader

	running atomic.Int32 // copy loops not yet returned

	// localShut is set when the local connection had to be closed entirely
	// because it cannot half-close; the local read error that follows is then
	// the end of that direction, not a failure.
	localShut atomic.Bool

	mu          sync.Mutex // guards ended, cleanHalves, err
	ended       bool       // the one teardown (clean close or reset) happened
	cleanHalves int        // directions that ended with EOF and a half-close
	err         error      // why the bridge was reset; nil after a clean end

	done chan struct{} // closed once the bridge is finished
}

func newBridge(r *Registry, info Info, s network.Stream, c net.Conn) *bridge {
	b := &bridge{
		reg:  r,
		info: info,
		s:    s,
		c:    c,
		done: make(chan struct{}),
	}
	b.fromPeer = smallFirstReader{r: s, pool: r.pool}
	b.fromLocal = newLocalReader(c, r.pool, r.cfg.plainRead)
	b.running.Store(2)
	return b
}

// snapshot returns the Info with the counters read now.
func (b *bridge) snapshot() Info {
	info := b.info
	info.BytesIn = b.bytesIn.Load()
	info.BytesOut = b.bytesOut.Load()
	return info
}

// run starts the two copy loops. The registry has already added 2 to its
// WaitGroup for them.
func (b *bridge) run() {
	go func() {
		defer b.reg.wg.Done()
		b.halfDone(b.copyToPeer())
		b.loopDone()
	}()
	go func() {
		defer b.reg.wg.Done()
		b.halfDone(b.copyFromPeer())
		b.loopDone()
	}()
}

// copyToPeer copies local -> stream. On a clean end of the local data it
// half-closes the stream and returns nil.
func (b *bridge) copyToPeer() error {
	defer b.fromLocal.release()
	for {
		p, err := b.fromLocal.next()
		if len(p) > 0 {
			n, werr := b.s.Write(p)
			b.bytesOut.Add(uint64(n))
			if werr != nil {
				return fmt.Errorf("writing to the peer: %w", werr)
			}
		}
		if err != nil && b.localShut.Load() {
			err = io.EOF
		}
		switch {
		case err == nil:
		case err == io.EOF: // exactly: a reset of a closed session wraps io.EOF
			if cerr := b.s.CloseWrite(); cerr != nil {
				return fmt.Errorf("closing the write half of the stream: %w", cerr)
			}
			return nil
		default:
			return fmt.Errorf("reading from the local connection: %w", err)
		}
	}
}

// copyFromPeer copies stream -> local. On a clean end of the stream data it
// half-closes the local connection and returns nil.
func (b *bridge) copyFromPeer() error {
	defer b.fromPeer.release()
	for {
		p, err := b.fromPeer.next()
		if len(p) > 0 {
			n, werr := b.c.Write(p)
			b.bytesIn.Add(uint64(n))
			if werr != nil {
				return fmt.Errorf("writing to the local connection: %w", werr)
			}
		}
		switch {
		case err == nil:
		case err == io.EOF: // exactly: a reset of a closed session wraps io.EOF
			if err := b.confirmPeerEOF(); err != nil {
				return fmt.Errorf("reading from the peer: %w", err)
			}
			return b.closeLocalWrite()
		default:
			return fmt.Errorf("reading from the peer: %w", err)
		}
	}
}

// confirmPeerEOF tells a real end of the stream from a lost connection.
// yamux (v5.1.0) can return the last buffered data together with a bare
// io.EOF when its session has just died: the window update that follows the
// read fails with the session's error, which is io.EOF when the remote closed
// the connection. A real end of stream reads as (0, io.EOF) again at once;
// after a dying session the read returns more data or, once the session has
// reset its streams, the reset error.
func (b *bridge) confirmPeerEOF() error {
	n, err := b.s.Read(b.fromPeer.small[:1])
	switch {
	case n == 0 && err == io.EOF:
		return nil
	case err == nil || err == io.EOF:
		return io.ErrUnexpectedEOF
	}
	return err
}

// closeLocalWrite half-closes the local connection, or closes it entirely
// when it cannot half-close.
func (b *bridge) closeLocalWrite() error {
	if cw, ok := b.c.(interface{ CloseWrite() error }); ok {
		if err := cw.CloseWrite(); err != nil {
			return fmt.Errorf("closing the write half of the local connection: %w", err)
		}
		return nil
	}
	b.localShut.Store(true)
	if err := b.c.Close(); err != nil {
		return fmt.Errorf("closing the local connection: %w", err)
	}
	return nil
}

// halfDone records the end of one direction: err nil means it ended cleanly
// (EOF, then half-close). The first error, or the second clean end, tears the
// bridge down; everything after the teardown is ignored.
func (b *bridge) halfDone(err error) {
	b.mu.Lock()
	if b.ended {
		b.mu.Unlock()
		return
	}
	if err != nil {
		b.ended = true
		b.err = err
		b.mu.Unlock()
		b.resetIO()
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
		log.Debugw("closing stream", "stream_id", b.info.ID, "peer", b.info.Peer, "protocol", b.info.Protocol, "err", err)
	}
	if err := b.c.Close(); err != nil && !b.localShut.Load() {
		log.Debugw("closing local connection", "stream_id", b.info.ID, "peer", b.info.Peer, "protocol", b.info.Protocol, "err", err)
	}
}

// reset tears the bridge down with reason unless it has already ended.
func (b *bridge) reset(reason error) {
	b.halfDone(reason)
}

// resetIO resets the stream and aborts the local connection so that its
// application sees a connection reset. Both copy loops then return.
func (b *bridge) resetIO() {
	_ = b.s.Reset()
	abortConn(b.c)
}

// loopDone is called by each copy loop as it returns; the last one finishes
// the bridge.
func (b *bridge) loopDone() {
	if b.running.Add(-1) == 0 {
		b.reg.finish(b)
	}
}

// endErr returns why the bridge ended (nil for a clean end). It is only
// meaningful once both loops have returned.
func (b *bridge) endErr() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// abortConn closes c so that its peer sees a reset (RST) where the
// connection supports SO_LINGER 0, and a plain close otherwise.
func abortConn(c net.Conn) {
	if l, ok := c.(interface{ SetLinger(int) error }); ok {
		_ = l.SetLinger(0)
	}
	_ = c.Close()
}

// normalReset tells whether err is an ordinary way for a tunnel to end
// (asked for, or reset by one of the two ends) rather than a fault.
func normalReset(err error) bool {
	return errors.Is(err, ErrResetRequested) ||
		errors.Is(err, ErrClosed) ||
		errors.Is(err, network.ErrReset) ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE)
}
