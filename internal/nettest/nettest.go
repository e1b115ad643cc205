// Package nettest provides loopback addresses for tests that need a
// connection to fail in a known way.
package nettest

import (
	"net"
	"syscall"
	"testing"
)

// RefusingAddr returns a loopback TCP address that refuses every connection
// until the test ends.
//
// Closing a listener and reusing its address is not enough: any listener
// bound to port 0 afterwards, in this process or another, may be given the
// same port, and the "dead" target then answers. Here a socket stays bound
// to the port without listening, so the kernel never hands the port out and
// answers each connection attempt with a reset.
func RefusingAddr(t testing.TB) *net.TCPAddr {
	t.Helper()
	// SOCK_CLOEXEC is Linux's; ForkLock keeps a concurrent exec from
	// inheriting the socket before it is marked close-on-exec.
	syscall.ForkLock.RLock()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err == nil {
		syscall.CloseOnExec(fd)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		t.Fatalf("nettest: socket: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatalf("nettest: binding a loopback port: %v", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatalf("nettest: getsockname: %v", err)
	}
	in4, ok := sa.(*syscall.SockaddrInet4)
	if !ok {
		t.Fatalf("nettest: bound to %T, want an IPv4 address", sa)
	}
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: in4.Port}
}

// RefusingUDPAddr returns a loopback UDP address whose port refuses every
// datagram (the kernel answers with ICMP port unreachable) until the test
// ends.
//
// The port is held by a socket connected to another address: the kernel
// gives such a socket only the datagrams of that address, so datagrams
// from anyone else find no socket, and no other socket can bind the port.
func RefusingUDPAddr(t testing.TB) *net.UDPAddr {
	t.Helper()
	c, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)},
		&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9})
	if err != nil {
		t.Fatalf("nettest: holding a loopback UDP port: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c.LocalAddr().(*net.UDPAddr)
}
