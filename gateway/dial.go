package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// dial opens a stream for the exchange in ctx (the one whose request made
// the client connection's transport dial), hands it to the stream registry
// bridged to one end of a socket pair, and returns the other end: the
// connection net/http speaks HTTP/1.1 over. origin is the HTTP client's
// address, recorded with the stream.
func (g *Gateway) dial(ctx context.Context, origin ma.Multiaddr) (net.Conn, error) {
	ex := exchangeFrom(ctx)
	if ex == nil { // only requests that went through ServeHTTP reach here
		return nil, errors.New("gateway: dial without a gateway request")
	}
	// The transport dials with a context that outlives the request; the
	// gateway's own timeout and its Close bound it instead.
	ctx, cancel := context.WithTimeout(ctx, g.cfg.timeout)
	defer cancel()
	stop := context.AfterFunc(g.ctx, cancel)
	defer stop()

	t := ex.target
	var s network.Stream
	var err error
	if t.name != "" {
		s, t.peer, err = g.openByName(ctx, t)
	} else {
		s, err = g.open.OpenStream(ctx, peer.AddrInfo{ID: t.peer}, t.proto)
	}
	if err != nil {
		return nil, &openError{target: t, err: err, timedOut: ctx.Err() != nil}
	}
	ws := &watchedStream{Stream: s}
	local, remote, err := socketPair()
	if err != nil {
		_ = s.Reset()
		return nil, fmt.Errorf("gateway: making a socket pair for the stream: %w", err)
	}
	if _, err := g.bridge.Bridge(ws, local, origin, p2pAddr(t.peer)); err != nil {
		remote.Close() // Bridge has reset s and closed local
		return nil, fmt.Errorf("gateway: bridging the stream: %w", err)
	}
	return &streamConn{Conn: remote, s: ws, target: t}, nil
}

// openError is a failure to open the stream of a request: the peer could
// not be found or reached, or does not serve the protocol.
type openError struct {
	target   target
	err      error
	timedOut bool // the gateway's timeout ran out first
}

func (e *openError) Error() string {
	return fmt.Sprintf("opening a stream to %s for %s: %v", e.target.peer, e.target.proto, e.err)
}

func (e *openError) Unwrap() error { return e.err }

// watchedStream is a stream that remembers the first error other than the
// end of the data that its reads or writes met, for the gateway to explain
// a failed exchange. The bridge reads and writes it.
type watchedStream struct {
	network.Stream
	err atomic.Pointer[error]
}

func (s *watchedStream) Read(p []byte) (int, error) {
	n, err := s.Stream.Read(p)
	if err != nil && err != io.EOF {
		s.note(err)
	}
	return n, err
}

func (s *watchedStream) Write(p []byte) (int, error) {
	n, err := s.Stream.Write(p)
	if err != nil {
		s.note(err)
	}
	return n, err
}

func (s *watchedStream) note(err error) { s.err.CompareAndSwap(nil, &err) }

// failure is the first error the stream met, or nil.
func (s *watchedStream) failure() error {
	if p := s.err.Load(); p != nil {
		return *p
	}
	return nil
}

// streamConn is the gateway's end of a socket pair whose other end is
// bridged to a stream.
type streamConn struct {
	net.Conn
	s      *watchedStream
	target target // with the peer found for @NAME
}
