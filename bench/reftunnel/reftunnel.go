// Package reftunnel is the reference tunnel of p2pd's benchmarks: the least
// any encrypted TCP tunnel has to do, and so the floor p2pd's forwards are
// measured against.
//
// A tunnel has two halves, usually in two processes. The entry accepts local
// TCP connections and opens, for each one, its own TLS 1.3 connection to the
// exit; the exit accepts those and dials the target over plain TCP. Bytes are
// copied both ways through one buffer per direction, with real half-close
// (the end of one direction is passed on with CloseWrite while the other
// keeps flowing). There is no multiplexing, no peer identity beyond the
// pinned certificate, no protocol negotiation and no registry.
//
// WithoutEncryption turns it into a plain relay: the same two processes and
// the same copying, with plain TCP between the halves. That is the floor of
// any tunnel built from two user-space relays, encrypted or not, and so
// what no such tunnel can beat on a given machine.
//
// It is a measuring tool, not a product: no reconnection, no access control,
// nothing persisted.
package reftunnel

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"sync"
	"time"
)

// ServerName is the name in the certificate NewCertificate makes and the
// name the entry expects the exit to present.
const ServerName = "reftunnel"

// DefaultBufferSize is the size of each direction's copy buffer.
const DefaultBufferSize = 128 << 10

// Role says which half of the tunnel a Proxy is.
type Role int

const (
	// Entry accepts plain TCP and dials the exit over TLS 1.3.
	Entry Role = iota
	// Exit accepts TLS 1.3 and dials the target over plain TCP.
	Exit
)

func (r Role) String() string {
	switch r {
	case Entry:
		return "entry"
	case Exit:
		return "exit"
	}
	return fmt.Sprintf("Role(%d)", int(r))
}

// Option configures a Proxy.
type Option func(*config) error

type config struct {
	cert    *tls.Certificate
	roots   *x509.CertPool
	bufSize int
	plain   bool
}

// WithCertificate sets the certificate an exit presents. An exit needs it.
func WithCertificate(cert tls.Certificate) Option {
	return func(c *config) error {
		if len(cert.Certificate) == 0 || cert.PrivateKey == nil {
			return errors.New("certificate: no certificate or no private key")
		}
		c.cert = &cert
		return nil
	}
}

// WithRootCAs sets the certificates an entry accepts from the exit (it
// verifies the name ServerName). An entry needs it.
func WithRootCAs(pool *x509.CertPool) Option {
	return func(c *config) error {
		if pool == nil {
			return errors.New("root CAs: nil pool")
		}
		c.roots = pool
		return nil
	}
}

// WithoutEncryption makes the halves talk plain TCP to each other: no TLS,
// no certificate needed. Both halves must have it.
func WithoutEncryption() Option {
	return func(c *config) error {
		c.plain = true
		return nil
	}
}

// WithBufferSize sets each direction's copy buffer size (1 KiB to 16 MiB;
// DefaultBufferSize otherwise).
func WithBufferSize(n int) Option {
	return func(c *config) error {
		if n < 1<<10 || n > 16<<20 {
			return fmt.Errorf("buffer size %d is outside 1 KiB-16 MiB", n)
		}
		c.bufSize = n
		return nil
	}
}

// Proxy is one half of a tunnel: it accepts connections on its address and
// joins each to a new connection to its remote address.
type Proxy struct {
	role   Role
	remote string
	cfg    config
	ln     net.Listener
	tlsCfg *tls.Config
	dialer net.Dialer

	mu     sync.Mutex // guards conns and closed
	conns  map[net.Conn]struct{}
	closed bool

	wg        sync.WaitGroup // the accept loop and every connection's goroutines
	closeOnce sync.Once
}

// Listen starts one half of a tunnel: it listens on the TCP address listen
// ("127.0.0.1:0" picks a port) and, for every connection, dials remote (the
// exit's address for an Entry, the target's for an Exit). ctx bounds only
// the listening; the proxy runs until Close.
func Listen(ctx context.Context, role Role, listen, remote string, opts ...Option) (*Proxy, error) {
	cfg := config{bufSize: DefaultBufferSize}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, fmt.Errorf("reference tunnel %s: %w", role, err)
		}
	}
	p := &Proxy{role: role, remote: remote, cfg: cfg, conns: map[net.Conn]struct{}{}}
	p.dialer.Timeout = 10 * time.Second
	switch {
	case role != Entry && role != Exit:
		return nil, fmt.Errorf("reference tunnel: unknown role %d", int(role))
	case cfg.plain:
	case role == Entry:
		if cfg.roots == nil {
			return nil, errors.New("reference tunnel entry: no root CAs to verify the exit (WithRootCAs)")
		}
		p.tlsCfg = &tls.Config{
			MinVersion:                  tls.VersionTLS13,
			RootCAs:                     cfg.roots,
			ServerName:                  ServerName,
			DynamicRecordSizingDisabled: true,
			ClientSessionCache:          tls.NewLRUClientSessionCache(64),
		}
	default:
		if cfg.cert == nil {
			return nil, errors.New("reference tunnel exit: no certificate (WithCertificate)")
		}
		p.tlsCfg = &tls.Config{
			MinVersion:                  tls.VersionTLS13,
			Certificates:                []tls.Certificate{*cfg.cert},
			DynamicRecordSizingDisabled: true,
		}
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("reference tunnel %s: listening on %s: %w", role, listen, err)
	}
	if role == Exit && !cfg.plain {
		ln = tls.NewListener(ln, p.tlsCfg)
	}
	p.ln = ln
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr is the address the proxy listens on.
func (p *Proxy) Addr() net.Addr { return p.ln.Addr() }

// Close stops accepting, aborts the connections in flight and waits for all
// of the proxy's goroutines. It is safe to call more than once.
func (p *Proxy) Close() error {
	var err error
	p.closeOnce.Do(func() {
		err = p.ln.Close()
		p.mu.Lock()
		p.closed = true
		for c := range p.conns {
			_ = c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return err
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	var backoff time.Duration
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: pause, then go on.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if !p.track(c) {
			_ = c.Close()
			return
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

// track registers c so that Close can abort it; false once closed.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// serve dials the remote for the accepted connection in and copies between
// the two until both directions have ended.
func (p *Proxy) serve(in net.Conn) {
	defer p.wg.Done()
	defer p.untrack(in)
	var out net.Conn
	var err error
	switch {
	case p.cfg.plain:
		out, err = p.dialer.Dial("tcp", p.remote)
	case p.role == Entry:
		out, err = tls.DialWithDialer(&p.dialer, "tcp", p.remote, p.tlsCfg)
	default:
		// Finish the handshake first: CloseWrite needs it, and the target
		// may end its data before the client has sent any.
		ctx, cancel := context.WithTimeout(context.Background(), p.dialer.Timeout)
		err = in.(*tls.Conn).HandshakeContext(ctx)
		cancel()
		if err == nil {
			out, err = p.dialer.Dial("tcp", p.remote)
		}
	}
	if err != nil {
		abort(in)
		return
	}
	if !p.track(out) {
		_ = out.Close()
		abort(in)
		return
	}
	defer p.untrack(out)

	var (
		once   sync.Once
		failed = func() { once.Do(func() { abort(in); abort(out) }) }
		done   = make(chan bool, 2)
	)
	pipe := func(dst, src net.Conn) {
		done <- copyHalf(dst, src, p.cfg.bufSize)
	}
	go pipe(out, in)
	go pipe(in, out)
	for range 2 {
		if !<-done {
			failed()
		}
	}
	_ = in.Close()
	_ = out.Close()
}

// copyHalf copies src to dst until src ends, then half-closes dst. It
// reports whether the direction ended cleanly.
func copyHalf(dst, src net.Conn, size int) bool {
	buf := make([]byte, size)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return false
			}
		}
		if err == io.EOF {
			cw, ok := dst.(interface{ CloseWrite() error })
			return ok && cw.CloseWrite() == nil
		}
		if err != nil {
			return false
		}
	}
}

// abort closes c so that its peer sees a reset where TCP allows it.
func abort(c net.Conn) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// NewCertificate makes a self-signed ECDSA P-256 certificate for
// ServerName, valid for a day, and a pool that trusts it.
func NewCertificate() (tls.Certificate, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("generating a key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: ServerName},
		DNSNames:              []string{ServerName},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("creating the certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("parsing the certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool, nil
}
