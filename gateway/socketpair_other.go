//go:build !linux

package gateway

import "net"

// socketPair returns the two ends of an in-memory connection (a Unix socket
// pair on Linux, where the bridge reads it through its descriptor).
func socketPair() (net.Conn, net.Conn, error) {
	a, b := net.Pipe()
	return a, b, nil
}
