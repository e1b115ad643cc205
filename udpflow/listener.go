package udpflow

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	pool "github.com/libp2p/go-buffer-pool"
)

// acceptBacklog bounds the new flows waiting for Accept; the datagrams of
// further new clients are dropped until Accept catches up.
const acceptBacklog = 128

// Listener is the UDP socket of a forward. It is a net.Listener whose Accept
// returns a Flow for each new client (source address); the datagrams of a
// client go to its flow until the flow is closed or idle, then a new
// datagram from it starts a new flow.
//
// Closing the Listener stops Accept and new flows, but not the flows already
// accepted, which share its socket (as closing a TCP listener leaves its
// connections open): the socket is closed, and the port freed, when the last
// of them ends.
type Listener struct {
	cfg    config
	pc     *net.UDPConn
	accept chan *Flow
	done   chan struct{} // closed by Close
	wg     sync.WaitGroup

	mu         sync.Mutex // guards flows, closed, sockClosed, warnedFull
	flows      map[netip.AddrPort]*Flow
	closed     bool
	sockClosed bool
	warnedFull bool
}

var _ net.Listener = (*Listener)(nil)

// Listen binds a UDP socket on network ("udp", "udp4" or "udp6") and
// address and starts reading it. ctx bounds only the binding.
func Listen(ctx context.Context, network, address string, opts ...Option) (*Listener, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	c, err := lc.ListenPacket(ctx, network, address)
	if err != nil {
		return nil, err
	}
	pc := c.(*net.UDPConn)
	SetBuffers(pc, cfg.socketBuffer)
	l := &Listener{
		cfg:    cfg,
		pc:     pc,
		accept: make(chan *Flow, acceptBacklog),
		done:   make(chan struct{}),
		flows:  make(map[netip.AddrPort]*Flow),
	}
	l.wg.Add(1)
	go l.readLoop()
	return l, nil
}

// SetBuffers asks for n-byte receive and send buffers on c, as every socket
// of a flow gets (DefaultSocketBuffer unless WithSocketBuffer says
// otherwise): past the system's cap where the process is allowed to
// (Linux, CAP_NET_ADMIN), else up to the cap. Getting less is not an error.
// It is exported for the programs at the ends of a tunnel: tests and
// benchmarks whose own sockets must hold a burst too.
func SetBuffers(c *net.UDPConn, n int) {
	if n == 0 {
		return
	}
	if err := c.SetReadBuffer(n); err != nil {
		log.Debugw("setting the UDP receive buffer", "addr", c.LocalAddr(), "err", err)
	}
	if err := c.SetWriteBuffer(n); err != nil {
		log.Debugw("setting the UDP send buffer", "addr", c.LocalAddr(), "err", err)
	}
	forceBuffers(c, n)
}

// Accept returns the next new flow. It fails with net.ErrClosed once the
// Listener is closed.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case <-l.done:
		return nil, net.ErrClosed
	default:
	}
	select {
	case f := <-l.accept:
		return f, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Addr returns the socket's bound address (a *net.UDPAddr).
func (l *Listener) Addr() net.Addr { return l.pc.LocalAddr() }

// Close stops Accept and new flows and closes the flows no one accepted.
// The socket stays open for the accepted flows until the last one ends.
// Safe to call more than once; it always returns nil.
func (l *Listener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.done)
	var waiting []*Flow
	for more := true; more; {
		select {
		case f := <-l.accept:
			waiting = append(waiting, f)
		default:
			more = false
		}
	}
	l.mu.Unlock()
	for _, f := range waiting {
		_ = f.Close()
	}
	l.closeSocketIfDone()
	return nil
}

// closeSocketIfDone closes the socket, and waits for the read loop, once
// the Listener is closed and has no flow left.
func (l *Listener) closeSocketIfDone() {
	l.mu.Lock()
	if !l.closed || len(l.flows) > 0 || l.sockClosed {
		l.mu.Unlock()
		return
	}
	l.sockClosed = true
	l.mu.Unlock()
	if err := l.pc.Close(); err != nil {
		log.Debugw("closing UDP socket", "addr", l.pc.LocalAddr(), "err", err)
	}
	l.wg.Wait()
}

// readLoop reads the socket until it is closed and hands each datagram to
// its client's flow.
func (l *Listener) readLoop() {
	defer l.wg.Done()
	buf := make([]byte, readBufSize)
	var backoff time.Duration
	for {
		n, from, err := l.pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// An unconnected socket reports no ICMP errors; anything else
			// is unexpected but need not end the forward.
			backoff = min(max(2*backoff, time.Millisecond), time.Second)
			log.Warnw("reading the UDP socket", "addr", l.pc.LocalAddr(), "err", err)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		d := pool.Get(n)
		copy(d, buf[:n])
		l.dispatch(netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), d)
	}
}

// dispatch hands d, from the client at from, to its flow, starting one if
// needed.
func (l *Listener) dispatch(from netip.AddrPort, d []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.flows[from]
	if f == nil {
		if l.closed {
			log.Debugw("UDP forward closed: dropping a datagram of a new client", "addr", from)
			pool.Put(d)
			return
		}
		f = l.newFlow(from)
		select {
		case l.accept <- f:
		default:
			if !l.warnedFull {
				l.warnedFull = true
				log.Warnw("too many new UDP clients waiting for a stream: dropping their datagrams (logged once)",
					"addr", l.pc.LocalAddr(), "backlog", acceptBacklog)
			}
			pool.Put(d)
			f.abandon()
			return
		}
		l.flows[from] = f
	}
	f.received(d)
}

// newFlow makes the flow of the client at from.
func (l *Listener) newFlow(from netip.AddrPort) *Flow {
	remote := net.UDPAddrFromAddrPort(from)
	f := newFlow(l.cfg, l.pc.LocalAddr(), remote, func(d []byte) error {
		_, err := l.pc.WriteToUDPAddrPort(d, from)
		return err
	})
	f.expire = func() {
		l.mu.Lock()
		if l.flows[from] == f {
			delete(l.flows, from)
		}
		l.mu.Unlock()
		f.q.end()
	}
	f.release = func() {
		l.mu.Lock()
		if l.flows[from] == f {
			delete(l.flows, from)
		}
		l.mu.Unlock()
		l.closeSocketIfDone()
	}
	return f
}

// abandon stops a flow that was never handed out or registered.
func (f *Flow) abandon() {
	f.release = func() {}
	_ = f.Close()
}

// Dial opens a UDP socket connected to address on network ("udp", "udp4" or
// "udp6") and returns its flow: the socket's datagrams are the flow's input,
// and the flow sends what it is given to address. The flow owns the socket
// and its reading goroutine; Close frees both.
//
// A service that is not running shows as ICMP refusals after the first
// datagrams; they are reported to the error hook (WithErrorHook), once.
func Dial(ctx context.Context, network, address string, opts ...Option) (*Flow, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	uc, ok := c.(*net.UDPConn)
	if !ok {
		_ = c.Close()
		return nil, fmt.Errorf("dialling %s %s: not a UDP network", network, address)
	}
	SetBuffers(uc, cfg.socketBuffer)
	f := newFlow(cfg, uc.LocalAddr(), uc.RemoteAddr(), func(d []byte) error {
		_, err := uc.Write(d)
		return err
	})
	var wg sync.WaitGroup
	f.expire = func() { f.q.end() }
	f.release = func() {
		if err := uc.Close(); err != nil {
			log.Debugw("closing UDP socket", "addr", uc.LocalAddr(), "err", err)
		}
		wg.Wait()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		f.readConnected(uc)
	}()
	return f, nil
}

// readConnected reads the flow's own connected socket until it is closed.
func (f *Flow) readConnected(uc *net.UDPConn) {
	buf := make([]byte, readBufSize)
	for {
		n, err := uc.Read(buf)
		switch {
		case err == nil:
		case errors.Is(err, net.ErrClosed):
			return
		case errors.Is(err, syscall.ECONNREFUSED):
			f.warn(warnRefused, fmt.Errorf("sending to %s: %w", f.remote, err))
			continue
		default:
			log.Warnw("reading from the UDP target; ending the flow", "addr", f.remote, "err", err)
			f.q.end()
			return
		}
		d := pool.Get(n)
		copy(d, buf[:n])
		f.received(d)
	}
}
