package fastpath

import (
	"context"
	"net"
	"sync"

	pool "github.com/libp2p/go-buffer-pool"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/sec"
	tptu "github.com/libp2p/go-libp2p/p2p/net/upgrader"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	yamux "github.com/libp2p/go-yamux/v5"
)

// maxCorked bounds what a corked connection holds before it writes
// anyway: a write larger than this leaves in several system calls.
const maxCorked = 512 << 10

// CorkedTLS is go-libp2p's TLS 1.3 security transport with one change:
// the TLS records that one Write of the secured connection produces leave
// in one system call instead of one each. crypto/tls seals at most 16 KiB
// per record and writes every record separately, so a 64 KiB yamux frame
// cost four writes; on loopback and in VMs each write is costly enough for
// this to matter (see BENCHMARKS.md). The bytes on the wire are the same,
// so it interoperates with any TLS peer; only the TCP segmentation changes.
// The plain reference is go-libp2p's own transport (libp2ptls.New), which
// package host uses unless given this one (host.TLSTransport).
type CorkedTLS struct {
	inner *libp2ptls.Transport
}

var (
	_ sec.SecureTransport = (*CorkedTLS)(nil)
	_ yamux.BuffersWriter = (*coalescedConn)(nil)
)

// NewCorkedTLS has the signature libp2p.Security expects of a constructor
// (its arguments are injected by go-libp2p).
func NewCorkedTLS(id protocol.ID, key crypto.PrivKey, muxers []tptu.StreamMuxer) (*CorkedTLS, error) {
	t, err := libp2ptls.New(id, key, muxers)
	if err != nil {
		return nil, err
	}
	return &CorkedTLS{inner: t}, nil
}

func (t *CorkedTLS) ID() protocol.ID { return t.inner.ID() }

func (t *CorkedTLS) SecureInbound(ctx context.Context, insecure net.Conn, p peer.ID) (sec.SecureConn, error) {
	cc := &corkConn{Conn: insecure}
	sc, err := t.inner.SecureInbound(ctx, cc, p)
	if err != nil {
		return nil, err
	}
	return &coalescedConn{SecureConn: sc, cork: cc}, nil
}

func (t *CorkedTLS) SecureOutbound(ctx context.Context, insecure net.Conn, p peer.ID) (sec.SecureConn, error) {
	cc := &corkConn{Conn: insecure}
	sc, err := t.inner.SecureOutbound(ctx, cc, p)
	if err != nil {
		return nil, err
	}
	return &coalescedConn{SecureConn: sc, cork: cc}, nil
}

// coalescedConn is a secured connection whose writes are corked: everything
// the TLS layer writes for one Write is gathered and written at once.
type coalescedConn struct {
	sec.SecureConn
	cork *corkConn

	writeMu sync.Mutex // serialises Write, so that one cork holds one Write's records
}

func (c *coalescedConn) Write(p []byte) (int, error) {
	return c.WriteBuffers([][]byte{p})
}

// WriteBuffers writes bufs as if they were one buffer: their records leave
// in one system call, and none is copied into a joint buffer first (each is
// still its own TLS record). go-yamux (the fork in third_party) writes a
// frame's header and body with it.
func (c *coalescedConn) WriteBuffers(bufs [][]byte) (int, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	size := 0
	for _, b := range bufs {
		// Each record adds a 5-byte header, a content-type byte and a
		// 16-byte tag.
		size += len(b) + (len(b)/(16<<10)+1)*22
	}
	c.cork.hold(size)
	var (
		n   int
		err error
	)
	for _, b := range bufs {
		var m int
		m, err = c.SecureConn.Write(b)
		n += m
		if err != nil {
			break
		}
	}
	if ferr := c.cork.release(); err == nil && ferr != nil {
		// The records were not sent: report nothing written, as the TLS
		// connection would have if its own write had failed.
		return 0, ferr
	}
	return n, err
}

// corkConn is the raw connection under TLS. While held, writes are
// appended to a buffer; release writes the buffer in one call. Writes that
// arrive while it is not held (the handshake, alerts) go straight through.
type corkConn struct {
	net.Conn

	mu   sync.Mutex // guards held and buf, and orders writes to Conn
	held bool
	buf  []byte
}

// hold starts gathering writes; size is how much they will likely add up to.
func (c *corkConn) hold(size int) {
	c.mu.Lock()
	c.held = true
	if c.buf == nil {
		c.buf = pool.Get(min(size, maxCorked))[:0]
	}
	c.mu.Unlock()
}

// release stops holding and writes what was gathered.
func (c *corkConn) release() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.held = false
	err := c.flushLocked()
	if c.buf != nil {
		pool.Put(c.buf[:cap(c.buf)]) // an idle connection keeps no buffer
		c.buf = nil
	}
	return err
}

func (c *corkConn) flushLocked() error {
	if len(c.buf) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.buf)
	c.buf = c.buf[:0]
	return err
}

func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.held {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
		return c.Conn.Write(p)
	}
	if len(c.buf)+len(p) > cap(c.buf) {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
		if len(p) > cap(c.buf) {
			return c.Conn.Write(p)
		}
	}
	c.buf = append(c.buf, p...)
	return len(p), nil
}
