//go:build !linux

package udpflow

import "net"

// forceBuffers does nothing: only Linux lets a privileged process pass the
// system's cap on socket buffers.
func forceBuffers(*net.UDPConn, int) {}
