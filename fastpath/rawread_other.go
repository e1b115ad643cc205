//go:build !unix

package fastpath

import "net"

// rawReader is not available on this platform; every connection is read
// through net.Conn.Read.
type rawReader struct{}

func newRawReader(net.Conn, *bufPool) *rawReader { return nil }

func (*rawReader) next() ([]byte, error)    { return nil, errWouldBlock }
func (*rawReader) tryNext() ([]byte, error) { return nil, errWouldBlock }
func (*rawReader) release()                 {}
