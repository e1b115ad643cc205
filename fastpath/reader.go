package fastpath

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
// the reader blocks: it reads into a small inline buffer, and only after a
// read that filled it, when more data is probably waiting, reads once into a
// pooled buffer, so that the write that follows is large too.
//
// The small chunk is handed over before that second read, because the
// second read blocks when nothing more was waiting (a message that exactly
// fills the small buffer): the message must not wait for data that may
// never come. Holding the chunk back for a larger write stalled request and
// response protocols with 512-byte messages (TestMessageOfSmallBufferSize).
type smallFirstReader struct {
	r     io.Reader
	pool  *bufPool
	held  *[]byte // pooled buffer of the last chunk, nil if none
	more  bool    // the last read filled its buffer
	small [smallReadSize]byte
}

func (sr *smallFirstReader) next() ([]byte, error) {
	sr.release()
	if sr.more {
		sr.held = sr.pool.get()
		buf := *sr.held
		n, err := sr.r.Read(buf)
		sr.more = err == nil && n == len(buf)
		return buf[:n], err
	}
	n, err := sr.r.Read(sr.small[:])
	sr.more = err == nil && n == len(sr.small)
	return sr.small[:n], err
}

func (sr *smallFirstReader) release() {
	if sr.held != nil {
		sr.pool.put(sr.held)
		sr.held = nil
	}
}
