package streams

import (
	"errors"
	"io"
	"sync"
)

// errWouldBlock is returned by rawReader.tryNext when no data is waiting.
var errWouldBlock = errors.New("no data waiting")

// smallReadSize is the size of the buffer a direction reads into while it
// waits for data. It lives inside the bridge, so an idle direction holds no
// pooled buffer; a read that fills it switches to a pooled buffer for the rest
// of the data that is already waiting.
const smallReadSize = 512

// bufPool hands out copy buffers of one size.
type bufPool struct {
	size int
	p    sync.Pool
}

func newBufPool(size int) *bufPool {
	return &bufPool{size: size}
}

func (bp *bufPool) get() *[]byte {
	if v := bp.p.Get(); v != nil {
		return v.(*[]byte)
	}
	b := make([]byte, bp.size)
	return &b
}

func (bp *bufPool) put(b *[]byte) {
	bp.p.Put(b)
}

// smallFirstReader reads any io.Reader without holding a pooled buffer while
// the reader blocks: it first reads into a small inline buffer and only when
// that fills up takes a pooled buffer to read what is already waiting.
type smallFirstReader struct {
	r     io.Reader
	pool  *bufPool
	held  *[]byte // pooled buffer of the last chunk, nil if none
	small [smallReadSize]byte
}

func (sr *smallFirstReader) next() ([]byte, error) {
	sr.release()
	n, err := sr.r.Read(sr.small[:])
	if err != nil || n < len(sr.small) {
		return sr.small[:n], err
	}
	// The small buffer filled up: more data is probably waiting. A second
	// read picks it up into a large buffer so that the write that follows is
	// large too. (It blocks only if exactly len(small) bytes were waiting.)
	sr.held = sr.pool.get()
	buf := *sr.held
	copy(buf, sr.small[:n])
	m, err := sr.r.Read(buf[n:])
	return buf[:n+m], err
}

func (sr *smallFirstReader) release() {
	if sr.held != nil {
		sr.pool.put(sr.held)
		sr.held = nil
	}
}
