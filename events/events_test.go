package events

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/p2pd/p2pd/api"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// describe renders what a subscriber reads as "type:seq" or "dropped(n):seq".
func describe(evs []api.Event) string {
	var parts []string
	for _, ev := range evs {
		if ev.Type == api.EventDropped {
			parts = append(parts, fmt.Sprintf("dropped(%d):%d", ev.Dropped, ev.Seq))
			continue
		}
		parts = append(parts, fmt.Sprintf("%s:%d", ev.Peer, ev.Seq))
	}
	return strings.Join(parts, " ")
}

// drain reads every queued event without waiting.
func drain(s *Subscription) []api.Event {
	var out []api.Event
	for {
		ev, ok := s.TryNext()
		if !ok {
			return out
		}
		out = append(out, ev)
	}
}

// TestLossIsReportedInPlace drives a subscriber with a small buffer through
// scripted publish/read steps and checks exactly what it reads.
func TestLossIsReportedInPlace(t *testing.T) {
	// Script: "p" publishes one event (peer "e<n>"), "r" reads one event,
	// "d" drains the rest.
	tests := []struct {
		name    string
		buffer  int
		script  string
		want    string
		dropped uint64
	}{
		{"fits", 3, "pppd", "e1:1 e2:2 e3:3", 0},
		{"overflow at the end", 2, "pppppd", "e1:1 e2:2 dropped(3):5", 3},
		{"overflow in the middle", 2, "ppprpppd", "e1:1 e2:2 dropped(1):3 e4:4 dropped(2):6", 3},
		{"space freed between losses", 1, "pprprpd", "e1:1 dropped(1):2 e3:3 dropped(1):4", 2},
		{"marker alone after reads", 1, "pprrd", "e1:1 dropped(1):2", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := NewDispatcher()
			defer d.Close()
			s := d.Subscribe(tt.buffer)
			defer s.Close()
			var got []api.Event
			n := 0
			for _, step := range tt.script {
				switch step {
				case 'p':
					n++
					d.Publish(api.Event{Type: api.EventPeerConnected, Peer: fmt.Sprintf("e%d", n)})
				case 'r':
					ev, ok := s.TryNext()
					if !ok {
						t.Fatalf("read step found the queue empty")
					}
					got = append(got, ev)
				case 'd':
					got = append(got, drain(s)...)
				}
			}
			if g := describe(got); g != tt.want {
				t.Errorf("read %q, want %q", g, tt.want)
			}
			if s.Dropped() != tt.dropped {
				t.Errorf("Dropped() = %d, want %d", s.Dropped(), tt.dropped)
			}
			if d.Dropped() != tt.dropped {
				t.Errorf("dispatcher Dropped() = %d, want %d", d.Dropped(), tt.dropped)
			}
		})
	}
}

// TestEverySubscriberGetsEverything checks fan-out, stamping and that one
// full subscriber does not cost another one anything.
func TestEverySubscriberGetsEverything(t *testing.T) {
	d := NewDispatcher()
	defer d.Close()
	fast := d.Subscribe(0)
	defer fast.Close()
	stuck := d.Subscribe(1)
	defer stuck.Close()
	if n := d.Subscribers(); n != 2 {
		t.Fatalf("Subscribers() = %d, want 2", n)
	}
	before := time.Now()
	for i := 0; i < 10; i++ {
		d.Publish(api.Event{Type: api.EventStreamOpened, Peer: fmt.Sprintf("e%d", i+1)})
	}
	got := drain(fast)
	if len(got) != 10 {
		t.Fatalf("fast subscriber read %d events, want 10", len(got))
	}
	for i, ev := range got {
		if ev.Seq != uint64(i+1) {
			t.Errorf("event %d has seq %d, want %d", i, ev.Seq, i+1)
		}
		if ev.Time.Before(before) {
			t.Errorf("event %d time %v was not stamped", i, ev.Time)
		}
	}
	if g, want := describe(drain(stuck)), "e1:1 dropped(9):10"; g != want {
		t.Errorf("stuck subscriber read %q, want %q", g, want)
	}
	if fast.Dropped() != 0 || stuck.Dropped() != 9 {
		t.Errorf("Dropped() = %d (fast), %d (stuck); want 0, 9", fast.Dropped(), stuck.Dropped())
	}
}

// TestPublishNeverWaits publishes far more events than a never-reading
// subscriber can hold; Publish must keep returning and count the loss.
func TestPublishNeverWaits(t *testing.T) {
	const total, buffer = 200_000, 16
	d := NewDispatcher()
	defer d.Close()
	s := d.Subscribe(buffer)
	defer s.Close()
	for i := 0; i < total; i++ {
		d.Publish(api.Event{Type: api.EventStreamClosed})
	}
	if got, want := s.Dropped(), uint64(total-buffer); got != want {
		t.Errorf("Dropped() = %d, want %d", got, want)
	}
	s.mu.Lock()
	queued := len(s.queue) - s.head
	s.mu.Unlock()
	if queued != buffer+1 {
		t.Errorf("queue holds %d entries, want %d events and one marker", queued, buffer+1)
	}
}

// TestConcurrentPublishers checks, under -race, that a reader sees strictly
// increasing sequence numbers and that events read plus events reported
// lost add up to events published.
func TestConcurrentPublishers(t *testing.T) {
	const publishers, each = 8, 5000
	d := NewDispatcher()
	s := d.Subscribe(64)
	defer s.Close()

	var wg sync.WaitGroup
	for p := 0; p < publishers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				d.Publish(api.Event{Type: api.EventPeerDiscovered})
			}
		}()
	}
	type result struct {
		real, lost uint64
		err        error
	}
	res := make(chan result, 1)
	go func() {
		var r result
		var last uint64
		for {
			ev, err := s.Next(context.Background())
			if errors.Is(err, ErrClosed) {
				res <- r
				return
			}
			if err != nil {
				r.err = err
				res <- r
				return
			}
			if ev.Seq <= last {
				r.err = fmt.Errorf("seq %d after %d", ev.Seq, last)
			}
			last = ev.Seq
			if ev.Type == api.EventDropped {
				r.lost += ev.Dropped
			} else {
				r.real++
			}
		}
	}()
	wg.Wait()
	d.Close() // the reader drains what is queued, then gets ErrClosed
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.real+r.lost != publishers*each {
		t.Errorf("read %d and lost %d events, want %d in all", r.real, r.lost, publishers*each)
	}
	if r.lost != s.Dropped() {
		t.Errorf("markers reported %d lost events, Dropped() says %d", r.lost, s.Dropped())
	}
}

func TestClose(t *testing.T) {
	t.Run("dispatcher close lets queued events be read", func(t *testing.T) {
		d := NewDispatcher()
		s := d.Subscribe(0)
		defer s.Close()
		d.Publish(api.Event{Type: api.EventListenerAdded})
		d.Close()
		d.Close()
		d.Publish(api.Event{Type: api.EventListenerRemoved}) // ignored
		ev, err := s.Next(context.Background())
		if err != nil || ev.Type != api.EventListenerAdded {
			t.Fatalf("Next = %v, %v; want the queued listener_added event", ev.Type, err)
		}
		if _, err := s.Next(context.Background()); !errors.Is(err, ErrClosed) {
			t.Fatalf("Next after the queue = %v, want ErrClosed", err)
		}
		select {
		case <-s.Done():
		default:
			t.Error("Done is not closed after the dispatcher's Close")
		}
	})
	t.Run("subscription close discards and wakes Next", func(t *testing.T) {
		d := NewDispatcher()
		defer d.Close()
		s := d.Subscribe(0)
		d.Publish(api.Event{Type: api.EventListenerAdded})
		errc := make(chan error, 1)
		s.Close()
		s.Close()
		go func() {
			_, err := s.Next(context.Background())
			errc <- err
		}()
		if err := <-errc; !errors.Is(err, ErrClosed) {
			t.Fatalf("Next after Close = %v, want ErrClosed", err)
		}
		if n := d.Subscribers(); n != 0 {
			t.Errorf("Subscribers() = %d after Close, want 0", n)
		}
	})
	t.Run("close wakes a waiting Next", func(t *testing.T) {
		d := NewDispatcher()
		s := d.Subscribe(0)
		errc := make(chan error, 1)
		go func() {
			_, err := s.Next(context.Background())
			errc <- err
		}()
		s.Close()
		if err := <-errc; !errors.Is(err, ErrClosed) {
			t.Fatalf("waiting Next after Close = %v, want ErrClosed", err)
		}
		d.Close()
	})
	t.Run("subscribe after close", func(t *testing.T) {
		d := NewDispatcher()
		d.Close()
		s := d.Subscribe(0)
		defer s.Close()
		if _, err := s.Next(context.Background()); !errors.Is(err, ErrClosed) {
			t.Fatalf("Next = %v, want ErrClosed", err)
		}
	})
}

func TestNextWaitsAndHonoursContext(t *testing.T) {
	d := NewDispatcher()
	defer d.Close()
	s := d.Subscribe(0)
	defer s.Close()

	got := make(chan api.Event, 1)
	go func() {
		ev, err := s.Next(context.Background())
		if err == nil {
			got <- ev
		}
		close(got)
	}()
	d.Publish(api.Event{Type: api.EventPeerConnected, Peer: "p"})
	if ev, ok := <-got; !ok || ev.Peer != "p" {
		t.Fatalf("waiting Next got %+v (ok %v), want the published event", ev, ok)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next with a cancelled context = %v, want context.Canceled", err)
	}
}

// BenchmarkPublish measures Publish with no subscriber, one that keeps up,
// and ones that never read (their queues are full the whole time).
func BenchmarkPublish(b *testing.B) {
	for _, bc := range []struct {
		name           string
		reading, stuck int
	}{
		{"none", 0, 0},
		{"1-reading", 1, 0},
		{"1-never-reading", 0, 1},
		{"10-never-reading", 0, 10},
	} {
		b.Run(bc.name, func(b *testing.B) {
			d := NewDispatcher()
			var wg sync.WaitGroup
			for i := 0; i < bc.reading; i++ {
				s := d.Subscribe(0)
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						if _, err := s.Next(context.Background()); err != nil {
							return
						}
					}
				}()
			}
			for i := 0; i < bc.stuck; i++ {
				s := d.Subscribe(16)
				for j := 0; j < 32; j++ {
					d.Publish(api.Event{Type: api.EventStreamOpened})
				}
				_ = s
			}
			ev := api.Event{Type: api.EventStreamClosed, Peer: "12D3KooWExample"}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				d.Publish(ev)
			}
			b.StopTimer()
			d.Close()
			wg.Wait()
		})
	}
}
