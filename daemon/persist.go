package daemon

import (
	"context"
	"errors"
	"sync"
)

// errPersisterStopped answers a wait for a save that will not happen: the
// daemon is stopping.
var errPersisterStopped = errors.New("the daemon is stopping: tunnels.json was not saved")

// persister writes tunnels.json from one goroutine, so that no registry lock
// is ever held while the disk syncs. Changes are announced with request,
// which never blocks; while a write runs, further requests pile up and the
// next write covers them all. wait blocks until a write that started after a
// given request has finished, and returns that write's error: the API
// answers a listen or forward only once it is on disk.
type persister struct {
	write func() error

	kick chan struct{} // capacity 1: a write is wanted
	quit chan struct{} // closed by stop
	done chan struct{} // closed when the goroutine has returned

	mu        sync.Mutex    // guards the fields below
	requested uint64        // the number of the latest request
	finished  uint64        // the latest request covered by a finished write
	err       error         // the result of that write
	round     chan struct{} // closed (and replaced) when a write finishes

	startOnce, stopOnce sync.Once
}

func newPersister(write func() error) *persister {
	return &persister{
		write: write,
		kick:  make(chan struct{}, 1),
		quit:  make(chan struct{}),
		done:  make(chan struct{}),
		round: make(chan struct{}),
	}
}

// start runs the writer goroutine; stop ends it.
func (p *persister) start() {
	p.startOnce.Do(func() { go p.loop() })
}

// request asks for a write covering every change made so far and returns
// the request's number, for wait.
func (p *persister) request() uint64 {
	p.mu.Lock()
	p.requested++
	n := p.requested
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default: // a write is already wanted; it will cover this request
	}
	return n
}

// wait blocks until request n is covered by a finished write and returns
// that write's error. ctx only bounds the wait.
func (p *persister) wait(ctx context.Context, n uint64) error {
	for {
		p.mu.Lock()
		finished, err, round := p.finished, p.err, p.round
		p.mu.Unlock()
		if finished >= n {
			return err
		}
		select {
		case <-round:
		case <-p.done:
			p.mu.Lock()
			finished, err = p.finished, p.err
			p.mu.Unlock()
			if finished >= n {
				return err
			}
			return errPersisterStopped
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// sync requests a write and waits for it.
func (p *persister) sync(ctx context.Context) error { return p.wait(ctx, p.request()) }

func (p *persister) loop() {
	defer close(p.done)
	for {
		select {
		case <-p.kick:
			p.writeOnce()
		case <-p.quit:
			// Flush what was asked for before stop.
			p.mu.Lock()
			pending := p.requested > p.finished
			p.mu.Unlock()
			if pending {
				p.writeOnce()
			}
			return
		}
	}
}

// writeOnce writes once, covering every request made so far.
func (p *persister) writeOnce() {
	p.mu.Lock()
	n := p.requested
	p.mu.Unlock()
	err := p.write() // sees every change made before request n
	p.mu.Lock()
	p.finished, p.err = n, err
	close(p.round)
	p.round = make(chan struct{})
	p.mu.Unlock()
}

// stop ends the goroutine once it has written what was requested before. It
// is safe to call more than once.
func (p *persister) stop() {
	p.start() // a persister that never ran has nothing to write, and ends at once
	p.stopOnce.Do(func() { close(p.quit) })
	<-p.done
}
