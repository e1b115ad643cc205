//go:build unix

package fastpath

import (
	"io"
	"net"
	"os"
	"syscall"
)

// rawReader reads a TCP or Unix connection through its syscall.RawConn. It
// takes a pooled buffer only when a read finds data and gives it back as soon
// as the socket is drained (EAGAIN), so an idle connection holds no buffer.
// next waits for data through the Go poller; tryNext never waits, for use
// with the registry's poller.
type rawReader struct {
	rc   syscall.RawConn
	pool *bufPool
	held *[]byte // buffer of the last chunk; kept while data keeps coming

	// state of the current read, used by readFn
	wait bool // wait for readability on EAGAIN
	n    int
	err  error

	readFn func(fd uintptr) bool // r.read as a func value, made once
}

// newRawReader returns nil when c is not a *net.TCPConn or *net.UnixConn.
// Only those exact types are used: a wrapper could buffer data of its own
// that a read of the file descriptor would skip.
func newRawReader(c net.Conn, pool *bufPool) *rawReader {
	var sc syscall.Conn
	switch t := c.(type) {
	case *net.TCPConn:
		sc = t
	case *net.UnixConn:
		sc = t
	default:
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	r := &rawReader{rc: rc, pool: pool}
	r.readFn = r.read
	return r
}

// read is called by RawConn.Read; returning false waits for readability.
func (r *rawReader) read(fd uintptr) bool {
	if r.held == nil {
		r.held = r.pool.get()
	}
	for {
		r.n, r.err = syscall.Read(int(fd), *r.held)
		if r.err != syscall.EINTR {
			break
		}
	}
	if r.err == syscall.EAGAIN {
		r.pool.put(r.held)
		r.held = nil
		return !r.wait
	}
	return true
}

func (r *rawReader) next() ([]byte, error) {
	r.wait = true
	return r.do()
}

// tryNext is next without waiting: it returns errWouldBlock when no data is
// waiting, holding no buffer.
func (r *rawReader) tryNext() ([]byte, error) {
	r.wait = false
	return r.do()
}

func (r *rawReader) do() ([]byte, error) {
	if err := r.rc.Read(r.readFn); err != nil {
		r.release()
		return nil, err
	}
	switch {
	case r.err == syscall.EAGAIN:
		return nil, errWouldBlock
	case r.err != nil:
		r.release()
		return nil, os.NewSyscallError("read", r.err)
	case r.n == 0:
		r.release()
		return nil, io.EOF
	}
	return (*r.held)[:r.n], nil
}

func (r *rawReader) release() {
	if r.held != nil {
		r.pool.put(r.held)
		r.held = nil
	}
}
