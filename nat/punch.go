package nat

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
)

// Hole punching bookkeeping.
const (
	// PunchAttempts is how many times DCUtR tries before it gives up on a
	// relayed connection (go-libp2p's holepunch maxRetries); it never
	// tries again on that connection.
	PunchAttempts = 3
	// DefaultPunchRetry is how long a failed punch is remembered: within
	// it, forwards to the peer fail at once; after it, the next one closes
	// the relayed connection and dials again, which makes DCUtR try anew.
	DefaultPunchRetry = time.Minute
	// maxTracked bounds the peers remembered.
	maxTracked = 4096
)

// PunchEvent is one step of hole punching with a peer, as the tracker
// reports it.
type PunchEvent struct {
	Peer peer.ID
	// Kind is "attempt" (an attempt starts), "result" (an attempt ended,
	// Success says how) or "direct_dial" (a plain direct dial to the
	// peer's public address, tried before punching; Success says how).
	Kind    string
	Attempt int
	Success bool
	Elapsed time.Duration
	Err     string
}

// punchState is what the tracker remembers of one peer.
type punchState struct {
	failures int       // failed attempts since the last success or retry
	lastErr  string    // the last attempt's error
	failedAt time.Time // when the punch was given up (zero: not given up)
	retrying bool      // a retry was handed out and has not ended yet
	ended    chan struct{}
}

// PunchTracker follows DCUtR with every peer. It implements
// holepunch.EventTracer: pass it to host.HolePunchTracer. Its methods are
// safe for concurrent use.
type PunchTracker struct {
	retry time.Duration
	now   func() time.Time

	mu      sync.Mutex
	peers   map[peer.ID]*punchState
	onEvent func(PunchEvent)
}

// NewPunchTracker returns a tracker that remembers a failed punch for
// retry (DefaultPunchRetry when 0).
func NewPunchTracker(retry time.Duration) *PunchTracker {
	if retry <= 0 {
		retry = DefaultPunchRetry
	}
	return &PunchTracker{retry: retry, now: time.Now, peers: map[peer.ID]*punchState{}}
}

// OnEvent has f called for every hole punching step (from go-libp2p's
// goroutines: f must not block).
func (t *PunchTracker) OnEvent(f func(PunchEvent)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.onEvent = f
}

func (t *PunchTracker) state(p peer.ID) *punchState {
	s := t.peers[p]
	if s == nil {
		if len(t.peers) >= maxTracked {
			for id := range t.peers { // forget an arbitrary peer
				delete(t.peers, id)
				break
			}
		}
		s = &punchState{ended: make(chan struct{})}
		t.peers[p] = s
	}
	return s
}

// end marks the current punch with s's peer as over and wakes waiters.
func (s *punchState) end() {
	close(s.ended)
	s.ended = make(chan struct{})
	s.retrying = false
}

// Trace implements holepunch.EventTracer.
func (t *PunchTracker) Trace(evt *holepunch.Event) {
	ev := PunchEvent{Peer: evt.Remote}
	t.mu.Lock()
	s := t.state(evt.Remote)
	switch e := evt.Evt.(type) {
	case *holepunch.HolePunchAttemptEvt:
		ev.Kind, ev.Attempt = "attempt", e.Attempt
	case *holepunch.EndHolePunchEvt:
		ev.Kind, ev.Success, ev.Elapsed, ev.Err = "result", e.Success, e.EllapsedTime, e.Error
		if e.Success {
			s.failures, s.lastErr, s.failedAt = 0, "", time.Time{}
			s.end()
		} else {
			s.failures++
			s.lastErr = oneLine(e.Error)
			ev.Attempt = s.failures
			if s.failures >= PunchAttempts {
				s.failedAt = t.now()
				s.end()
			}
		}
	case *holepunch.DirectDialEvt:
		ev.Kind, ev.Success, ev.Elapsed, ev.Err = "direct_dial", e.Success, e.EllapsedTime, e.Error
		if e.Success {
			s.failures, s.lastErr, s.failedAt = 0, "", time.Time{}
			s.end()
		}
	case *holepunch.ProtocolErrorEvt:
		// The peer does not speak DCUtR (or not yet): nothing will be
		// tried on this relayed connection.
		ev.Kind, ev.Err = "result", "protocol error: "+oneLine(e.Error)
		s.failures, s.lastErr, s.failedAt = PunchAttempts, ev.Err, t.now()
		s.end()
	default:
		t.mu.Unlock()
		return
	}
	f := t.onEvent
	t.mu.Unlock()
	if f != nil {
		f(ev)
	}
}

// oneLine folds a multi-line error (go-libp2p lists each failed dial on a
// line of its own) into one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// ErrPunchFailed is wrapped by the reasons NoDirectPath gives.
var ErrPunchFailed = errors.New("hole punching failed")

// NoDirectPath says whether waiting for a direct connection to p is
// pointless: it returns why (wrapping ErrPunchFailed) while a failed punch
// is remembered. Once the memory is older than the retry interval it
// returns nil with retry set, once, so that the caller re-triggers hole
// punching (by closing its relayed connections to p and dialing again);
// callers meanwhile get the old reason.
func (t *PunchTracker) NoDirectPath(p peer.ID) (reason error, retry bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.peers[p]
	if s == nil || s.failedAt.IsZero() {
		return nil, false
	}
	if t.now().Sub(s.failedAt) >= t.retry && !s.retrying {
		s.retrying = true
		s.failures, s.failedAt = 0, time.Time{}
		return nil, true
	}
	if s.retrying {
		return nil, false
	}
	return t.reason(s), false
}

// Reason is NoDirectPath's reason, without handing out a retry.
func (t *PunchTracker) Reason(p peer.ID) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.peers[p]
	if s == nil || s.failedAt.IsZero() {
		return nil
	}
	return t.reason(s)
}

func (t *PunchTracker) reason(s *punchState) error {
	switch {
	case s.failures >= PunchAttempts:
		return fmt.Errorf("%w %d times (last: %s)", ErrPunchFailed, s.failures, s.lastErr)
	case s.lastErr != "":
		return fmt.Errorf("%w: %s", ErrPunchFailed, s.lastErr)
	}
	return fmt.Errorf("%w: no attempt succeeded", ErrPunchFailed)
}

// Ended returns a channel closed when the current hole punch with p ends
// (success or giving up), so a waiter can stop waiting early.
func (t *PunchTracker) Ended(p peer.ID) <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.state(p).ended
}

// Failed records that a wait for a direct connection to p ended without
// one although no punch was seen failing (for example DCUtR never
// started): it is then remembered like a failed punch.
func (t *PunchTracker) Failed(p peer.ID, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.state(p)
	if s.failedAt.IsZero() {
		s.failedAt = t.now()
		if s.lastErr == "" {
			s.lastErr = oneLine(err.Error())
		}
	}
	s.retrying = false
}
