package fastpath

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/p2pd/p2pd/internal/ends"
)

// localState says who reads the local connection of a bridge.
type localState uint8

const (
	localRunning localState = iota // a goroutine is copying local -> stream
	localIdle                      // armed in the registry poller; no goroutine
	localEnded                     // the direction is over
)

// freshWaitBelow is the size under which a read of the stream that did not
// fill its buffer counts as the end of a message, after which the stream ->
// local direction waits for the next data in a fresh goroutine (see
// runFromPeer). Bulk data comes in yamux frames of up to 64 KiB, each read
// as 512 bytes and the rest: a fresh goroutine per frame doubled the
// allocations per MiB of BenchmarkBridge/buf-256KiB/down (69 against 35),
// for no memory saved while data flows. The price: a connection that goes
// idle right after a bulk transfer waits in the goroutine that copied it
// (4 KiB of stack rather than 2) until its next message.
const freshWaitBelow = 16 << 10

// errParked is returned by copyToPeer when the local direction went idle and
// was handed to the poller, and by copyFromPeer when it handed the wait for
// the stream's next data to a fresh goroutine: the goroutine ends but the
// direction does not.
var errParked = errors.New("parked")

// bridge copies bytes between one libp2p stream and one local connection: a
// streams.Pump.
//
// The stream -> local direction always has a goroutine, though not always
// the same one: whenever the stream has nothing more waiting, the goroutine
// that copied hands the wait for the next data to a fresh one (see
// runFromPeer). The local -> stream direction has one only while data flows
// when the local connection can be watched by the engine's poller (TCP or
// Unix on Linux); otherwise it has one for its whole life too. The direction
// that ends last calls done (registry removal, unprotect, OnClose).
type bridge struct {
	eng  *Engine
	id   uint64 // unique within the engine; the poller's key
	s    network.Stream
	c    net.Conn
	done func(error) // called once both directions are over

	bytesIn  atomic.Uint64 // stream -> local connection
	bytesOut atomic.Uint64 // local connection -> stream

	fromPeer  smallFirstReader
	raw       *rawReader        // reads the local connection, or nil
	fromLocal *smallFirstReader // reads it when raw is nil

	poll *poller // the engine's poller, or nil; set by NewPump

	// deadline is the read deadline set on the local connection while its
	// goroutine waits before parking, in Unix nanoseconds (0: none set).
	// Only the local direction's goroutine (one at a time) touches it.
	deadline int64

	directions atomic.Int32 // directions not yet over

	// localShut is set when the local connection had to be closed entirely
	// because it cannot half-close; the local read error that follows is then
	// the end of that direction, not a failure.
	localShut atomic.Bool

	mu  sync.Mutex // guards ended, cleanHalves, err, local, watched
	err error      // why the bridge was reset; nil after a clean end

	// The small fields last, so that the bridge fits the allocator's
	// 704-byte size class (10,000 idle bridges hold 10,000 bridges).

	ended       bool  // the one teardown (clean close or reset) happened
	cleanHalves uint8 // directions that ended with EOF and a half-close
	local       localState
	// polled is whether the local direction goes idle through the poller.
	// Set before the first local goroutine starts; after that only that
	// direction's goroutine (one at a time) touches it, as it does deadline.
	polled bool
	// peerFirst is set when the stream -> local direction is to start only
	// after the local direction's first read (see copyToPeerLoop). Only the
	// local direction's first goroutine touches it.
	peerFirst bool
	// woken is set when the poller started the local direction's
	// goroutine: its first read is then made without waiting (the data is
	// there), where a wait bounded by a tiny park delay could expire before
	// the read is even tried. Set under mu before that goroutine starts;
	// then only it touches the field.
	woken bool
	// watched is whether the local connection is registered with the
	// poller (the first park registers it, later ones re-arm it). Guarded
	// by mu.
	watched bool
}

func newBridge(e *Engine, id uint64, s network.Stream, c net.Conn, done func(error)) *bridge {
	b := &bridge{
		eng:  e,
		id:   id,
		s:    s,
		c:    c,
		done: done,
	}
	b.fromPeer = smallFirstReader{r: s, pool: e.pool}
	if e.cfg.localMode != localPlain {
		b.raw = newRawReader(c, e.pool)
	}
	if b.raw == nil {
		b.fromLocal = &smallFirstReader{r: c, pool: e.pool}
	}
	b.directions.Store(2)
	return b
}

// Bytes returns the bytes copied so far from and to the peer.
func (b *bridge) Bytes() (in, out uint64) { return b.bytesIn.Load(), b.bytesOut.Load() }

// Start starts the bridge.
func (b *bridge) Start() {
	p := b.poll
	if p != nil && b.raw != nil && b.eng.cfg.parkDelay > 0 {
		// A new connection is likely to talk soon (most clients speak
		// first; a service answers the first request): its goroutine
		// waits for the first data itself and parks only after the park
		// delay, which saves the poller's wake-up and a goroutine start on
		// the connection's first bytes.
		b.polled = true
		b.mu.Lock()
		b.local = localRunning
		b.mu.Unlock()
		// A stream we opened may still have to send its protocol
		// handshake: let the local direction's first data go out with it.
		b.peerFirst = b.s.Stat().Direction == network.DirOutbound
		if !b.peerFirst {
			b.eng.spawn(b.runFromPeer)
		}
		b.eng.spawn(b.runToPeer)
		return
	}
	b.eng.spawn(b.runFromPeer)
	if p == nil || b.raw == nil {
		b.eng.spawn(b.runToPeer)
		return
	}
	b.polled = true
	b.mu.Lock()
	b.local = localIdle
	b.watched = true
	b.mu.Unlock()
	if err := p.add(b, b.raw); err != nil {
		// Not watched: wake it now; its first drain notices that it cannot
		// re-arm and waits in its own goroutine from then on.
		log.Debugw("watching local connection", "bridge", b.id, "err", err)
		b.wakeLocal()
	}
}

// runFromPeer is the goroutine of the stream -> local direction: it waits
// for the stream's next data right here, then copies on in copyFromPeer,
// which starts a fresh runFromPeer for the next wait once nothing more is
// waiting.
//
// So a bridge waits for its stream in a goroutine whose stack holds that one
// read and nothing more. A goroutine that has written to the local
// connection and sent yamux window updates has outgrown the initial 2 KiB
// stack, and the runtime shrinks a stack only when a quarter of it would do,
// which a goroutine waiting in a stream read never gets under: it would keep
// 4 KiB for as long as its connection stays idle (bench/: 4.0 KiB of stack
// per idle connection at 10,000, 2.1–2.3 KiB since). Starting a goroutine
// costs less than the system call that wrote the message; it happens once
// per message (see freshWaitBelow), not per slice of a bulk transfer.
func (b *bridge) runFromPeer() {
	p, err := b.fromPeer.next()
	if err = b.copyFromPeer(p, err); err == errParked {
		return
	}
	b.halfDone(err)
	b.directionDone()
}

func (b *bridge) runToPeer() {
	err := b.copyToPeer()
	if err == errParked {
		return
	}
	b.halfDone(err)
	b.mu.Lock()
	b.local = localEnded
	b.mu.Unlock()
	if b.poll != nil {
		b.poll.remove(b.id)
	}
	b.directionDone()
}

// wakeLocal starts a goroutine for the local direction if it is idle. The
// poller calls it when the connection becomes readable, a teardown calls it
// so that the direction sees the closed connection and ends.
func (b *bridge) wakeLocal() {
	b.mu.Lock()
	if b.local != localIdle {
		b.mu.Unlock()
		return
	}
	b.local = localRunning
	b.woken = true
	b.mu.Unlock()
	b.eng.spawn(b.runToPeer)
}

// park hands the drained local direction back to the poller. It returns
// false, and switches to waiting in this goroutine, when the bridge is being
// torn down or the connection cannot be re-armed.
func (b *bridge) park() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ended || !b.eng.working() {
		b.polled = false
		return false
	}
	var err error
	if b.watched {
		err = b.poll.rearm(b.id, b.raw)
	} else {
		// b.mu is held, so an event that fires at once waits in wakeLocal
		// until the direction is marked idle below.
		err = b.poll.add(b, b.raw)
		b.watched = err == nil
	}
	if err == nil && !b.eng.working() {
		// The poller died meanwhile and may never see this registration.
		err = errors.New("the fast bridge failed")
	}
	if err != nil {
		log.Debugw("watching local connection", "bridge", b.id, "err", err)
		b.polled = false
		return false
	}
	b.local = localIdle
	return true
}

// nextLocal returns the next chunk of the local connection.
func (b *bridge) nextLocal() ([]byte, error) {
	switch {
	case b.raw == nil:
		return b.fromLocal.next()
	case b.polled && b.eng.cfg.parkDelay == 0:
		return b.raw.tryNext()
	case b.polled:
		return b.lingerNext()
	default:
		return b.raw.next()
	}
}

// lingerNext waits in this goroutine for the next chunk of a polled local
// connection, but only until the connection has been silent for about the
// park delay (between half of it and all of it: the deadline is pushed back
// only once half has passed, so a busy connection rarely touches its timer).
// It then returns errWouldBlock, and the caller parks.
func (b *bridge) lingerNext() ([]byte, error) {
	delay := b.eng.cfg.parkDelay
	if now := time.Now(); now.Add(delay/2).UnixNano() > b.deadline {
		d := now.Add(delay)
		b.deadline = d.UnixNano()
		if err := b.c.SetReadDeadline(d); err != nil {
			b.deadline = 0
			return b.raw.tryNext()
		}
	}
	p, err := b.raw.next()
	if errors.Is(err, os.ErrDeadlineExceeded) {
		b.deadline = 0
		if cerr := b.c.SetReadDeadline(time.Time{}); cerr != nil {
			return nil, fmt.Errorf("clearing the read deadline: %w", cerr)
		}
		return nil, errWouldBlock
	}
	return p, err
}

func (b *bridge) releaseLocal() {
	if b.raw != nil {
		b.raw.release()
	} else {
		b.fromLocal.release()
	}
}

// copyToPeer copies local -> stream. On a clean end of the local data it
// half-closes the stream and returns nil; it returns errParked when the
// direction went idle in the poller.
func (b *bridge) copyToPeer() error {
	err := b.copyToPeerLoop()
	if err != errParked {
		// Not after parking: by then another goroutine may own the reader
		// (and a drained reader holds no buffer).
		b.releaseLocal()
	}
	return err
}

func (b *bridge) copyToPeerLoop() error {
	for {
		first, woken := b.peerFirst, b.woken
		var p []byte
		var err error
		if first || woken {
			b.peerFirst, b.woken = false, false
			p, err = b.raw.tryNext()
			if err == errWouldBlock {
				err = nil // nothing yet: wait below as usual
			}
		} else {
			p, err = b.nextLocal()
		}
		var werr error
		if len(p) > 0 {
			var n int
			n, werr = b.s.Write(p)
			b.bytesOut.Add(uint64(n))
		}
		if first {
			// Only now: the first Read of a lazily negotiated stream sends
			// the protocol proposal by itself, in a yamux frame of its own
			// (go-libp2p's lazy streams even from a goroutine of their
			// own), while the first Write sends it together with the data.
			// A connection with nothing to say yet keeps waiting here.
			b.eng.spawn(b.runFromPeer)
		}
		if werr != nil {
			return fmt.Errorf("writing to the peer: %w", werr)
		}
		if err != nil && err != errWouldBlock && b.localShut.Load() {
			err = io.EOF
		}
		switch {
		case err == nil:
		case err == errWouldBlock:
			if b.park() {
				return errParked
			}
		case err == io.EOF:
			if cerr := b.s.CloseWrite(); cerr != nil {
				return fmt.Errorf("closing the write half of the stream: %w", cerr)
			}
			return nil
		default:
			return fmt.Errorf("reading from the local connection: %w", err)
		}
	}
}

// copyFromPeer copies stream -> local, starting with the chunk p and error
// err of the read runFromPeer made. On a clean end of the stream data it
// half-closes the local connection and returns nil. When a read did not
// fill its buffer, so that the next one probably waits, it starts a fresh
// runFromPeer for that read and returns errParked.
func (b *bridge) copyFromPeer(p []byte, err error) error {
	for {
		if len(p) > 0 {
			n, werr := b.c.Write(p)
			b.bytesIn.Add(uint64(n))
			if werr != nil {
				b.fromPeer.release()
				return fmt.Errorf("writing to the local connection: %w", werr)
			}
		}
		if err != nil {
			b.fromPeer.release()
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
		if !b.fromPeer.more && len(p) < freshWaitBelow {
			b.fromPeer.release() // before the new goroutine owns the reader
			b.eng.spawn(b.runFromPeer)
			return errParked
		}
		p, err = b.fromPeer.next()
	}
}

// confirmPeerEOF tells a real end of the stream from a lost connection
// (see ends.ConfirmEOF).
func (b *bridge) confirmPeerEOF() error {
	return ends.ConfirmEOF(b.s, b.fromPeer.small[:])
}

// closeLocalWrite half-closes the local connection, or closes it entirely
// when it cannot half-close.
func (b *bridge) closeLocalWrite() error {
	if ends.CanHalfClose(b.c) {
		if err := ends.CloseWrite(b.c); err != nil {
			return fmt.Errorf("closing the write half of the local connection: %w", err)
		}
		return nil
	}
	b.localShut.Store(true)
	if err := ends.CloseWrite(b.c); err != nil {
		return fmt.Errorf("closing the local connection: %w", err)
	}
	b.wakeLocal() // an idle local direction must see the close
	return nil
}

// halfDone records the end of one direction: err nil means it ended cleanly
// (EOF, then half-close). The first error, or the second clean end, tears the
// bridge down; everything after the teardown is ignored. reset calls it too.
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
		_ = b.s.Reset()
		ends.Abort(b.c)
		b.wakeLocal() // an idle local direction must see the close and end
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
		log.Debugw("closing stream", "bridge", b.id, "protocol", b.s.Protocol(), "err", err)
	}
	if err := b.c.Close(); err != nil && !b.localShut.Load() {
		log.Debugw("closing local connection", "bridge", b.id, "protocol", b.s.Protocol(), "err", err)
	}
}

// Reset tears the bridge down with reason unless it has already ended: the
// stream is reset and the local connection aborted, so both loops end.
func (b *bridge) Reset(reason error) {
	b.halfDone(reason)
}

// directionDone is called once per direction when it is over; the last one
// finishes the bridge.
func (b *bridge) directionDone() {
	if b.directions.Add(-1) == 0 {
		b.mu.Lock()
		err := b.err
		b.mu.Unlock()
		b.done(err)
	}
}
