//go:build !unix

package streams

import "net"

// newRawReader is not available on this platform; every connection is read
// through net.Conn.Read.
func newRawReader(net.Conn, *bufPool) chunkReader { return nil }
