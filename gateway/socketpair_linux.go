package gateway

import (
	"net"
	"os"
	"syscall"
)

// socketPair returns the two ends of a new Unix stream socket pair: kernel
// buffered in both directions, with half-close, so that the bridge treats
// the gateway's end like any local connection.
func socketPair() (net.Conn, net.Conn, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, os.NewSyscallError("socketpair", err)
	}
	a, err := fdConn(fds[0])
	if err != nil {
		syscall.Close(fds[1])
		return nil, nil, err
	}
	b, err := fdConn(fds[1])
	if err != nil {
		a.Close()
		return nil, nil, err
	}
	return a, b, nil
}

// fdConn turns fd into a net.Conn; fd itself is closed (the conn has a
// copy).
func fdConn(fd int) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "gateway-socketpair")
	defer f.Close()
	return net.FileConn(f)
}
