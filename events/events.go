// Package events fans the daemon's typed events (api.Event) out to any
// number of subscribers without ever blocking the code that publishes them:
// libp2p notification callbacks, the stream bridge, the listener registry.
//
// Each subscriber has a bounded queue. When it reads too slowly and its
// queue is full, newer events are dropped for it alone; the loss is counted
// and reported to it in place, as one api.EventDropped event that stands for
// the events lost at that point. Publishing costs the same whether a
// subscriber reads or not.
//
// The package does not persist events, replay them to late subscribers, or
// deliver them over the network; the daemon's API handler does the last.
package events

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	logging "github.com/ipfs/go-log/v2"

	"github.com/p2pd/p2pd/api"
)

var log = logging.Logger("p2pd/events")

// DefaultBuffer is how many events a subscriber may fall behind before it
// starts losing them.
const DefaultBuffer = 1024

// ErrClosed is returned by Subscription.Next once the subscription has been
// closed, or once the dispatcher has been closed and every event queued
// before that has been read.
var ErrClosed = errors.New("event subscription closed")

// Dispatcher numbers events and offers each to every subscriber. Its methods
// are safe for concurrent use. The zero value is not usable; use
// NewDispatcher.
type Dispatcher struct {
	mu     sync.Mutex // guards seq, subs and closed
	seq    uint64
	subs   map[*Subscription]struct{}
	closed bool

	dropped atomic.Uint64 // events lost by all subscribers together
}

// NewDispatcher returns a dispatcher with no subscribers.
func NewDispatcher() *Dispatcher {
	return &Dispatcher{subs: map[*Subscription]struct{}{}}
}

// Publish stamps ev with the next sequence number (from 1) and, if unset,
// the current time, and queues it for every subscriber. It never blocks on
// a subscriber and never fails; after Close it does nothing.
func (d *Dispatcher) Publish(ev api.Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	d.seq++
	ev.Seq = d.seq
	for s := range d.subs {
		if s.push(ev) {
			d.dropped.Add(1)
		}
	}
}

// Subscribe returns a new subscription that receives every event published
// from now on. buffer is how many unread events it may hold (buffer <= 0
// means DefaultBuffer). The caller must Close it. Subscribing to a closed
// dispatcher gives a subscription whose Next returns ErrClosed.
func (d *Dispatcher) Subscribe(buffer int) *Subscription {
	if buffer <= 0 {
		buffer = DefaultBuffer
	}
	s := &Subscription{
		d:      d,
		limit:  buffer,
		notify: make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		s.end(false)
		return s
	}
	d.subs[s] = struct{}{}
	return s
}

// Subscribers is the number of open subscriptions.
func (d *Dispatcher) Subscribers() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.subs)
}

// Dropped is how many events all subscribers together have lost.
func (d *Dispatcher) Dropped() uint64 { return d.dropped.Load() }

// Close ends every subscription (each can still read what it had queued)
// and makes later Publish calls do nothing. It is safe to call twice.
func (d *Dispatcher) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	d.closed = true
	for s := range d.subs {
		s.end(false)
		delete(d.subs, s)
	}
}

// Subscription is one subscriber's queue of events. Next and TryNext are
// meant for one reading goroutine; Close and Dropped may be called from any.
type Subscription struct {
	d      *Dispatcher
	limit  int           // the most real (not dropped-marker) events queued
	notify chan struct{} // gets a token when an event is queued
	done   chan struct{} // closed when the subscription ends

	mu sync.Mutex // guards everything below
	// queue holds events in order, with an api.EventDropped marker where
	// events were lost. Markers are never adjacent, so the queue never
	// holds more than 2*limit+1 entries.
	queue   []api.Event
	head    int    // index of the oldest entry in queue
	real    int    // entries in queue that are not markers
	lost    uint64 // events this subscriber has lost in all
	ended   bool   // no more events will be queued
	discard bool   // Close was called: Next stops at once, queued or not
}

// push queues ev, or records its loss when the queue is full; it reports
// whether ev was lost. The dispatcher's lock is held.
func (s *Subscription) push(ev api.Event) (lost bool) {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return false
	}
	if s.real < s.limit {
		s.queue = append(s.queue, ev)
		s.real++
	} else {
		lost = true
		s.lost++
		if n := len(s.queue); n > s.head && s.queue[n-1].Type == api.EventDropped {
			m := &s.queue[n-1]
			m.Dropped++
			m.Seq, m.Time = ev.Seq, ev.Time
		} else {
			s.queue = append(s.queue, api.Event{Seq: ev.Seq, Time: ev.Time, Type: api.EventDropped, Dropped: 1})
			log.Debugw("event subscriber reads too slowly; dropping events", "queued", s.real, "lost_total", s.lost)
		}
	}
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
	return lost
}

// pop takes the oldest queued event; s.mu is held.
func (s *Subscription) pop() (api.Event, bool) {
	if s.discard || s.head == len(s.queue) {
		return api.Event{}, false
	}
	ev := s.queue[s.head]
	s.queue[s.head] = api.Event{} // let the GC have the payload
	s.head++
	if ev.Type != api.EventDropped {
		s.real--
	}
	switch {
	case s.head == len(s.queue):
		s.queue, s.head = s.queue[:0], 0
	case s.head >= 64 && s.head*2 >= len(s.queue):
		n := copy(s.queue, s.queue[s.head:])
		clear(s.queue[n:])
		s.queue, s.head = s.queue[:n], 0
	}
	return ev, true
}

// end stops the subscription; discard drops what is still queued.
// The dispatcher's lock is held, or the subscription is not registered.
func (s *Subscription) end(discard bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if discard {
		s.discard = true
		s.queue, s.head, s.real = nil, 0, 0
	}
	if !s.ended {
		s.ended = true
		close(s.done)
	}
}

// Next returns the next event, waiting for one until ctx ends. Events come
// in publishing order; where the subscriber lost events, an
// api.EventDropped event says how many (its Seq is the last lost one's, so
// Seq keeps increasing). Next returns ErrClosed after Close, or once the
// dispatcher is closed and the queue is empty, and ctx.Err() when ctx ends.
func (s *Subscription) Next(ctx context.Context) (api.Event, error) {
	for {
		s.mu.Lock()
		ev, ok := s.pop()
		ended := s.ended
		s.mu.Unlock()
		if ok {
			return ev, nil
		}
		if ended {
			return api.Event{}, ErrClosed
		}
		select {
		case <-ctx.Done():
			return api.Event{}, ctx.Err()
		case <-s.done:
		case <-s.notify:
		}
	}
}

// TryNext returns the next queued event without waiting; ok is false when
// none is queued. It lets a reader batch what has piled up.
func (s *Subscription) TryNext() (ev api.Event, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pop()
}

// Dropped is how many events this subscriber has lost in all.
func (s *Subscription) Dropped() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lost
}

// Done is closed when the subscription ends (Close, or the dispatcher's
// Close). Queued events may still be read after a dispatcher Close.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Close unsubscribes and discards what is queued; Next then returns
// ErrClosed. It is safe to call more than once.
func (s *Subscription) Close() {
	s.d.mu.Lock()
	delete(s.d.subs, s)
	s.d.mu.Unlock()
	s.end(true)
}
