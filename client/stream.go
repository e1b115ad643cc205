package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/p2pd/p2pd/api"
)

// errClosedByCaller is the cancellation cause of a stream or tunnel whose
// Close was called.
var errClosedByCaller = errors.New("closed by the caller")

// maxEventLine bounds one line of the event stream.
const maxEventLine = 1 << 20

// EventStream is a live subscription to one daemon's events. It is bound to
// that daemon for its whole life: when the daemon stops or dies the stream
// ends, and it is never moved to another daemon (not even by the client of
// NewLBClient; see there). Next is for one goroutine; Close may be called
// from any.
type EventStream struct {
	daemon string // the API address the events come from
	repo   string // the repo named in the Config, for messages
	cancel context.CancelCauseFunc
	cause  func() error // why the request's context ended, if it did
	body   io.ReadCloser
	sc     *bufio.Scanner
	onLost func() // called once when the daemon is lost; may be nil
	err    error  // the terminal error, once there is one; only Next uses it
}

// Daemon is the API address of the daemon the events come from.
func (s *EventStream) Daemon() string { return s.daemon }

// Next blocks for the next event. The daemon numbers events from 1 (a new
// daemon, or a restarted one, starts again from 1); an api.EventDropped
// event stands for events the daemon dropped because this subscriber read
// too slowly.
//
// Once the stream has ended, Next keeps returning the same error: io.EOF
// after Close, the context's error when the context given to Events ended,
// and an *UnreachableError (errors.Is(err, ErrUnreachable)) when the daemon
// stopped or the connection to it broke. A line that is not a valid event
// gives a decoding error and does not end the stream.
func (s *EventStream) Next() (api.Event, error) {
	if s.err != nil {
		return api.Event{}, s.err
	}
	for s.sc.Scan() {
		line := bytes.TrimSpace(s.sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var ev api.Event
		if err := json.Unmarshal(line, &ev); err != nil {
			return api.Event{}, fmt.Errorf("decoding an event from the daemon at %s: %w", s.daemon, err)
		}
		return ev, nil
	}
	s.err = s.endError(s.sc.Err())
	return api.Event{}, s.err
}

func (s *EventStream) endError(readErr error) error {
	if cause := s.cause(); cause != nil {
		if errors.Is(cause, errClosedByCaller) {
			return io.EOF
		}
		return cause
	}
	if errors.Is(readErr, bufio.ErrTooLong) {
		s.cancel(readErr)
		return fmt.Errorf("an event from the daemon at %s is longer than %d bytes: %w", s.daemon, maxEventLine, readErr)
	}
	if readErr == nil {
		readErr = errors.New("the daemon ended the event stream")
	}
	if s.onLost != nil {
		s.onLost()
	}
	return &UnreachableError{Addr: s.daemon, Repo: s.repo, Sent: true, Err: readErr}
}

// Close ends the subscription; a Next waiting in another goroutine returns
// io.EOF. It is safe to call more than once and always returns nil.
func (s *EventStream) Close() error {
	s.cancel(errClosedByCaller)
	s.body.Close()
	return nil
}

func (c *defaultClient) Events(ctx context.Context) (*EventStream, error) {
	return c.events(ctx, nil)
}

// events opens the event stream; onLost (if set) is called when the stream
// ends because the daemon went away.
func (c *defaultClient) events(ctx context.Context, onLost func()) (*EventStream, error) {
	rctx, cancel := context.WithCancelCause(ctx)
	resp, ep, err := c.send(rctx, http.MethodGet, api.RouteEvents, nil)
	if err != nil {
		cancel(nil)
		return nil, err
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), maxEventLine)
	return &EventStream{
		daemon: ep.Multiaddr,
		repo:   c.cfg.Repo,
		cancel: cancel,
		cause:  func() error { return context.Cause(rctx) },
		body:   resp.Body,
		sc:     sc,
		onLost: onLost,
	}, nil
}

// Tunnel is a foreground listener or forward: it exists in the daemon only
// while the Tunnel is open. Closing it (or ending the context it was made
// with) removes the entry from the daemon; Done is closed when the tunnel
// has ended, whoever ended it. Like an EventStream, a Tunnel is bound to the
// daemon that created it.
type Tunnel struct {
	// Listener is the entry the daemon created, with the real bound port.
	Listener api.Listener

	daemon string
	cancel context.CancelCauseFunc
	done   chan struct{}

	mu  sync.Mutex // guards err
	err error
}

// Daemon is the API address of the daemon holding the tunnel.
func (t *Tunnel) Daemon() string { return t.daemon }

// Done is closed when the tunnel has ended.
func (t *Tunnel) Done() <-chan struct{} { return t.done }

// Err says why the tunnel ended: nil while it is open and after Close or
// the end of its context; ErrTunnelEnded when the daemon removed it; an
// *UnreachableError when the connection to the daemon broke.
func (t *Tunnel) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// Close removes the tunnel from the daemon and waits until the request
// holding it has ended. It is safe to call more than once and always
// returns nil.
func (t *Tunnel) Close() error {
	t.cancel(errClosedByCaller)
	<-t.done
	return nil
}

// hold keeps the request open until it ends, then records why.
func (t *Tunnel) hold(body io.ReadCloser, cause func() error, repo string, onLost func()) {
	defer close(t.done)
	defer body.Close()
	_, err := io.Copy(io.Discard, body)
	if cause() != nil {
		return // ended by us: Close, or the caller's context
	}
	if err == nil {
		err = ErrTunnelEnded
	} else {
		if onLost != nil {
			onLost()
		}
		err = &UnreachableError{Addr: t.daemon, Repo: repo, Sent: true, Err: err}
	}
	t.mu.Lock()
	t.err = err
	t.mu.Unlock()
}

func (c *defaultClient) foreground(ctx context.Context, route string, req any, onLost func()) (*Tunnel, error) {
	rctx, cancel := context.WithCancelCause(ctx)
	resp, ep, err := c.send(rctx, http.MethodPost, route, req)
	if err != nil {
		cancel(nil)
		return nil, err
	}
	t := &Tunnel{daemon: ep.Multiaddr, cancel: cancel, done: make(chan struct{})}
	dec := json.NewDecoder(resp.Body)
	if err := dec.Decode(&t.Listener); err != nil {
		cancel(nil)
		resp.Body.Close()
		return nil, fmt.Errorf("decoding the daemon's answer to %s: %w", route, err)
	}
	body := struct {
		io.Reader
		io.Closer
	}{io.MultiReader(dec.Buffered(), resp.Body), resp.Body}
	go t.hold(body, func() error { return context.Cause(rctx) }, c.cfg.Repo, onLost)
	return t, nil
}

func (c *defaultClient) ListenForeground(ctx context.Context, req api.ListenRequest) (*Tunnel, error) {
	req.Foreground = true
	return c.foreground(ctx, api.RouteListen, req, nil)
}

func (c *defaultClient) ForwardForeground(ctx context.Context, req api.ForwardRequest) (*Tunnel, error) {
	req.Foreground = true
	return c.foreground(ctx, api.RouteForward, req, nil)
}
