// Package ends holds how a byte bridge ends the two sides it joins: a local
// connection is half-closed (or closed when it cannot half-close) or
// aborted with a reset, and a libp2p stream's end of data is confirmed
// before it is passed on. Both of p2pd's bridges (the plain one in package
// streams and the fast one in package fastpath) end their sides this way.
package ends

import (
	"io"
	"net"
)

// Abort closes c so that its peer sees a reset (RST) where the connection
// supports SO_LINGER 0, and a plain close otherwise.
func Abort(c net.Conn) {
	if l, ok := c.(interface{ SetLinger(int) error }); ok {
		_ = l.SetLinger(0)
	}
	_ = c.Close()
}

// CanHalfClose tells whether c can close its write half alone. When it
// cannot, CloseWrite closes it entirely, and a bridge must take the read
// error that follows as the end of that direction, not a failure: it
// notes that before calling CloseWrite.
func CanHalfClose(c net.Conn) bool {
	_, ok := c.(interface{ CloseWrite() error })
	return ok
}

// CloseWrite half-closes c, or closes it entirely when it cannot half-close.
func CloseWrite(c net.Conn) error {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}

// ConfirmEOF tells a real end of a stream's data from a lost connection,
// after a Read of s returned io.EOF. yamux (v5.1.0) can return the last
// buffered data together with a bare io.EOF when its session has just died:
// the window update that follows the read fails with the session's error,
// which is io.EOF when the remote closed the connection. A real end of
// stream reads as (0, io.EOF) again at once; after a dying session the read
// returns more data or, once the session has reset its streams, the reset
// error. scratch must have room for at least one byte.
func ConfirmEOF(s io.Reader, scratch []byte) error {
	n, err := s.Read(scratch[:1])
	switch {
	case n == 0 && err == io.EOF:
		return nil
	case err == nil || err == io.EOF:
		return io.ErrUnexpectedEOF
	}
	return err
}
