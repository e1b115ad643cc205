package udpflow

import (
	"sync"

	pool "github.com/libp2p/go-buffer-pool"
)

// queue holds the datagrams of one flow waiting to go onto its stream. It is
// bounded in datagrams and bytes; a push beyond either bound drops the oldest
// datagrams first. Datagrams are buffers from go-buffer-pool, returned to it
// when dropped or consumed.
type queue struct {
	maxN, maxBytes int

	mu    sync.Mutex // guards everything below
	items [][]byte   // FIFO from head
	head  int
	bytes int  // payload bytes in items[head:]
	ended bool // no more pushes; take reports the end once drained
	// wake has room for one signal: a push or the end while a reader may
	// be waiting.
	wake chan struct{}
}

func newQueue(maxN, maxBytes int) *queue {
	return &queue{maxN: maxN, maxBytes: maxBytes, wake: make(chan struct{}, 1)}
}

// push appends d, dropping the oldest datagrams while a bound is exceeded.
// It returns how many it dropped, and false (taking d's buffer back) if the
// queue has ended.
func (q *queue) push(d []byte) (dropped int, ok bool) {
	q.mu.Lock()
	if q.ended {
		q.mu.Unlock()
		pool.Put(d)
		return 0, false
	}
	for q.len() > 0 && (q.len()+1 > q.maxN || q.bytes+len(d) > q.maxBytes) {
		old := q.items[q.head]
		q.items[q.head] = nil
		q.head++
		q.bytes -= len(old)
		pool.Put(old)
		dropped++
	}
	if q.head > 0 && q.head >= len(q.items)/2 {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	q.items = append(q.items, d)
	q.bytes += len(d)
	q.mu.Unlock()
	q.signal()
	return dropped, true
}

func (q *queue) len() int { return len(q.items) - q.head }

// waiting returns how many datagrams are queued.
func (q *queue) waiting() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.len()
}

func (q *queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// take removes and returns the oldest datagram (ok), or, when the queue is
// empty, whether it has ended. It does not wait (see wake).
func (q *queue) take() (d []byte, ok, ended bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.len() == 0 {
		return nil, false, q.ended
	}
	d = q.items[q.head]
	q.items[q.head] = nil
	q.head++
	q.bytes -= len(d)
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	}
	return d, true, false
}

// end refuses further pushes; what is queued can still be taken. It
// reports whether the queue was open.
func (q *queue) end() bool {
	q.mu.Lock()
	was := !q.ended
	q.ended = true
	q.mu.Unlock()
	q.signal()
	return was
}

// discard ends the queue and drops what it holds, returning how many.
func (q *queue) discard() int {
	q.mu.Lock()
	q.ended = true
	n := q.len()
	for _, d := range q.items[q.head:] {
		pool.Put(d)
	}
	q.items, q.head, q.bytes = nil, 0, 0
	q.mu.Unlock()
	q.signal()
	return n
}
