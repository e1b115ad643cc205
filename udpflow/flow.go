// Package udpflow carries UDP through libp2p streams for p2pd's UDP tunnels.
//
// A flow is the traffic between one local UDP party and the tunnel: on the
// forward side one client (one source address) of the forward's socket, on
// the listen side one socket dialled to the target service, so the service
// sees one client per remote flow. A Flow is a net.Conn whose byte stream is
// the flow's datagrams framed for a stream: each datagram is a 2-byte
// big-endian length followed by that many bytes. Reading a Flow gives the
// frames of the datagrams the local party sent; writing frames to it sends
// each datagram, whole, to the local party. Package streams bridges a Flow to
// a libp2p stream like any connection, so datagrams cross the tunnel whole
// or not at all, never merged or split.
//
// UDP semantics are kept where a stream would otherwise impose its own: a
// flow queues a bounded number of datagrams while its stream is slower than
// the sender and drops the oldest beyond that; datagrams larger than
// MaxDatagram and datagrams the local side refuses are dropped. Drops are
// counted (DatagramCounts) and logged once per flow and kind. A flow that
// sees no datagram either way for the idle timeout ends its input: its stream
// is half-closed, and the flow closes once the peer has done the same.
//
// The package does not open streams or decide who may use a tunnel: package
// listeners does, with a Listener for a forward and Dial for a listen.
package udpflow

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	logging "github.com/ipfs/go-log/v2"
	pool "github.com/libp2p/go-buffer-pool"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/p2pd/p2pd/streams"
)

var log = logging.Logger("p2pd/udpflow")

// ProtocolSuffix is appended to a tunnel's protocol to name the protocol
// its UDP flows speak on the wire, so that a TCP forward never reaches a UDP
// listen (or the reverse): the peer refuses the protocol instead of
// misreading the bytes.
const ProtocolSuffix = "/p2pd-udp/1"

// WireProtocol returns the protocol a UDP tunnel for p speaks on the wire.
func WireProtocol(p protocol.ID) protocol.ID {
	return p + ProtocolSuffix
}

// headerLen is the size of a frame's length prefix.
const headerLen = 2

// readBufSize holds any UDP datagram, so a datagram larger than MaxDatagram
// is seen whole (and dropped) rather than cut to size.
const readBufSize = 1 << 16

// errFrameTooLarge is returned by Write when the peer frames a datagram
// larger than MaxDatagram.
var errFrameTooLarge = errors.New("the peer sent a datagram larger than 65507 bytes")

// warnKind is a kind of trouble logged once per flow.
type warnKind int

const (
	warnTooLarge warnKind = iota
	warnQueueFull
	warnSend
	warnRefused
	nWarnKinds
)

// Flow is one UDP flow: a net.Conn carrying framed datagrams (see the
// package doc) that implements streams.DatagramConn. Read and Write may be
// called from one goroutine each; Close from any.
type Flow struct {
	cfg           config
	local, remote net.Addr
	q             *queue
	send          func([]byte) error // delivers one datagram to the local party
	expire        func()             // ends the flow's input when it is idle
	release       func()             // frees the local side; called once by Close

	last  atomic.Int64 // time of the last datagram either way, UnixNano
	timer *time.Timer  // the idle check

	// Read side: touched only by the reading goroutine.
	pending []byte // the part of a frame Read could not return yet
	pendBuf []byte // the pooled buffer pending points into
	dlMu    sync.Mutex
	rdl     time.Time // read deadline; guarded by dlMu

	// Write side: touched only by the writing goroutine.
	hdr  [headerLen]byte
	hdrN int    // header bytes seen of the current frame
	part []byte // pooled buffer gathering the current datagram
	want int    // its length

	in, out, dropped, bytesIn, bytesOut atomic.Uint64
	warned                              [nWarnKinds]atomic.Bool

	closeOnce sync.Once
	closed    chan struct{}
}

var (
	_ net.Conn             = (*Flow)(nil)
	_ streams.DatagramConn = (*Flow)(nil)
)

func newFlow(cfg config, local, remote net.Addr, send func([]byte) error) *Flow {
	f := &Flow{
		cfg:    cfg,
		local:  local,
		remote: remote,
		q:      newQueue(cfg.queueDatagrams, cfg.queueBytes),
		send:   send,
		closed: make(chan struct{}),
	}
	f.last.Store(time.Now().UnixNano())
	f.timer = time.AfterFunc(cfg.idleTimeout, f.checkIdle)
	return f
}

// checkIdle runs when the idle timer fires: it ends the flow's input if no
// datagram went either way for the idle timeout, or waits for the rest.
func (f *Flow) checkIdle() {
	select {
	case <-f.closed:
		return
	default:
	}
	idle := time.Since(time.Unix(0, f.last.Load()))
	if f.out.Load() == 0 && f.q.waiting() > 0 {
		// Datagrams wait for a stream still being opened (bounded by the
		// listener registry's dial timeout): not idle.
		idle = 0
	}
	if idle < f.cfg.idleTimeout {
		f.timer.Reset(f.cfg.idleTimeout - idle)
		return
	}
	log.Debugw("UDP flow idle, closing", "addr", f.remote, "idle", idle)
	f.expire()
}

// received queues a datagram from the local party; d is a pooled buffer
// the flow now owns.
func (f *Flow) received(d []byte) {
	f.last.Store(time.Now().UnixNano())
	if len(d) > MaxDatagram {
		f.dropped.Add(1)
		f.warn(warnTooLarge, fmt.Errorf("dropped a datagram of %d bytes from %s: larger than %d bytes", len(d), f.remote, MaxDatagram))
		pool.Put(d)
		return
	}
	dropped, ok := f.q.push(d)
	if !ok {
		f.dropped.Add(1) // the flow is ending
		return
	}
	if dropped > 0 {
		f.dropped.Add(uint64(dropped))
		f.warn(warnQueueFull, fmt.Errorf("the tunnel is slower than %s sends: dropping its oldest datagrams", f.remote))
	}
}

// warn logs err and tells the error hook, the first time for each kind.
func (f *Flow) warn(kind warnKind, err error) {
	if f.warned[kind].Swap(true) {
		return
	}
	log.Warnw("UDP flow dropping datagrams (logged once per flow)", "addr", f.remote, "err", err)
	if f.cfg.onError != nil {
		f.cfg.onError(err)
	}
}

// Read returns frames of the datagrams the local party sent, as many whole
// ones as are waiting and fit, and the start of the next one when it does
// not fit (the rest comes with the next Read). It waits for a first
// datagram; it returns io.EOF once the flow's input ended (idle) and its
// queue is drained.
func (f *Flow) Read(p []byte) (int, error) {
	select {
	case <-f.closed:
		return 0, net.ErrClosed
	default:
	}
	if len(p) == 0 {
		return 0, nil
	}
	n := 0
	if len(f.pending) > 0 {
		n = f.takePending(p)
		if n == len(p) {
			return n, nil
		}
	}
	for {
		d, ok, ended := f.q.take()
		if !ok {
			if n > 0 {
				return n, nil
			}
			if ended {
				return 0, io.EOF
			}
			if err := f.waitInput(); err != nil {
				return 0, err
			}
			continue
		}
		if f.out.Add(1) == 1 {
			// The stream has just started taking the flow: a flow whose
			// stream took long to open is not idle for that.
			f.last.Store(time.Now().UnixNano())
		}
		f.bytesOut.Add(uint64(len(d)))
		if rest := p[n:]; len(rest) >= headerLen+len(d) {
			binary.BigEndian.PutUint16(rest, uint16(len(d)))
			copy(rest[headerLen:], d)
			n += headerLen + len(d)
			pool.Put(d)
			if n == len(p) {
				return n, nil
			}
			continue
		}
		buf := pool.Get(headerLen + len(d))
		binary.BigEndian.PutUint16(buf, uint16(len(d)))
		copy(buf[headerLen:], d)
		pool.Put(d)
		f.pendBuf, f.pending = buf, buf
		return n + f.takePending(p[n:]), nil
	}
}

// takePending copies what fits of the pending frame into p.
func (f *Flow) takePending(p []byte) int {
	c := copy(p, f.pending)
	f.pending = f.pending[c:]
	if len(f.pending) == 0 {
		pool.Put(f.pendBuf)
		f.pendBuf, f.pending = nil, nil
	}
	return c
}

// waitInput waits until the queue may have changed, the flow is closed or
// the read deadline passes.
func (f *Flow) waitInput() error {
	f.dlMu.Lock()
	dl := f.rdl
	f.dlMu.Unlock()
	var expired <-chan time.Time
	if !dl.IsZero() {
		d := time.Until(dl)
		if d <= 0 {
			return os.ErrDeadlineExceeded
		}
		t := time.NewTimer(d)
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-f.q.wake:
		return nil
	case <-f.closed:
		return net.ErrClosed
	case <-expired:
		return os.ErrDeadlineExceeded
	}
}

// Write takes frames from the stream and sends each datagram, once whole,
// to the local party. A datagram the local side refuses is dropped and
// counted, not an error; a frame larger than MaxDatagram is.
func (f *Flow) Write(p []byte) (int, error) {
	select {
	case <-f.closed:
		return 0, net.ErrClosed
	default:
	}
	total := len(p)
	for len(p) > 0 {
		if f.hdrN < headerLen {
			c := copy(f.hdr[f.hdrN:], p)
			f.hdrN += c
			p = p[c:]
			if f.hdrN < headerLen {
				break
			}
			f.want = int(binary.BigEndian.Uint16(f.hdr[:]))
			if f.want > MaxDatagram {
				return total - len(p), fmt.Errorf("%w (%d bytes)", errFrameTooLarge, f.want)
			}
			if f.want == 0 {
				if err := f.deliver(nil); err != nil {
					return total - len(p), err
				}
				continue
			}
		}
		if f.part == nil && len(p) >= f.want {
			// The whole datagram is here: send it from p.
			d := p[:f.want]
			p = p[f.want:]
			if err := f.deliver(d); err != nil {
				return total - len(p), err
			}
			continue
		}
		if f.part == nil {
			f.part = pool.Get(f.want)[:0]
		}
		c := min(f.want-len(f.part), len(p))
		f.part = append(f.part, p[:c]...)
		p = p[c:]
		if len(f.part) == f.want {
			err := f.deliver(f.part)
			pool.Put(f.part[:cap(f.part)])
			f.part = nil
			if err != nil {
				return total - len(p), err
			}
		}
	}
	return total, nil
}

// deliver sends one datagram to the local party and resets the frame
// state. Only a closed socket is an error.
func (f *Flow) deliver(d []byte) error {
	f.hdrN = 0
	f.last.Store(time.Now().UnixNano())
	if err := f.send(d); err != nil {
		if errors.Is(err, net.ErrClosed) {
			return err
		}
		f.dropped.Add(1)
		f.warn(warnSend, fmt.Errorf("sending a datagram of %d bytes to %s: %w", len(d), f.remote, err))
		return nil
	}
	f.in.Add(1)
	f.bytesIn.Add(uint64(len(d)))
	return nil
}

// DatagramCounts returns the flow's counters (streams.DatagramConn).
func (f *Flow) DatagramCounts() streams.DatagramCounts {
	return streams.DatagramCounts{
		In:       f.in.Load(),
		Out:      f.out.Load(),
		Dropped:  f.dropped.Load(),
		BytesIn:  f.bytesIn.Load(),
		BytesOut: f.bytesOut.Load(),
	}
}

// Close ends the flow: queued datagrams are dropped and the local side is
// freed (a forward's client is forgotten, a listen's socket closed). Safe to
// call more than once; it always returns nil.
func (f *Flow) Close() error {
	f.closeOnce.Do(func() {
		close(f.closed)
		f.timer.Stop()
		f.q.discard()
		f.release()
	})
	return nil
}

// LocalAddr returns the flow's local UDP address: a forward's socket, or the
// socket a listen dialled its target from.
func (f *Flow) LocalAddr() net.Addr { return f.local }

// RemoteAddr returns the local party's UDP address: a forward's client, or a
// listen's target.
func (f *Flow) RemoteAddr() net.Addr { return f.remote }

// SetDeadline sets the read deadline; see SetWriteDeadline.
func (f *Flow) SetDeadline(t time.Time) error {
	return f.SetReadDeadline(t)
}

// SetReadDeadline makes a Read waiting for datagrams return
// os.ErrDeadlineExceeded at t (zero: never).
func (f *Flow) SetReadDeadline(t time.Time) error {
	f.dlMu.Lock()
	f.rdl = t
	f.dlMu.Unlock()
	f.q.signal() // a waiting Read looks at the new deadline
	return nil
}

// SetWriteDeadline has no effect: a Write waits at most for room in the UDP
// socket's send buffer, never for the local party.
func (f *Flow) SetWriteDeadline(time.Time) error { return nil }
