// Package client is the Go client of p2pd's control API. The p2pd CLI is
// built on it, and other programs (orchestrators, dashboards, test
// harnesses) can import it to drive one daemon or several.
//
// NewDefaultClient talks to one daemon; NewLBClient spreads calls over
// several with a failover or round-robin strategy and survives daemons that
// go away. Every method takes a context first, turns the daemon's error
// answers back into Go errors that match the package's sentinels
// (ErrUnreachable, ErrUnauthorized, ErrNotFound, ...), and is safe for
// concurrent use. Requests go through a chain of http.RoundTrippers (bearer
// token re-read from its file when it changes, user agent, debug logging)
// that NewTransport also hands out.
//
// The package does not start or stop daemons, and it imports no libp2p
// networking code: it speaks HTTP/JSON to the daemon's API address (loopback
// TCP or a unix socket) and holds no state beyond reusable connections.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"sync/atomic"
	"time"

	logging "github.com/ipfs/go-log/v2"

	"github.com/p2pd/p2pd/api"
)

var log = logging.Logger("p2pd/client")

// DefaultFindTimeout is how long the daemon searches when Find is given no
// timeout (the daemon's own default).
const DefaultFindTimeout = 10 * time.Second

// Client is the whole control API of one daemon, or of a group of daemons
// for the client NewLBClient returns. Methods are safe for concurrent use.
type Client interface {
	// ID describes the node.
	ID(ctx context.Context) (*api.ID, error)
	// Peers lists connected peers.
	Peers(ctx context.Context) ([]api.Peer, error)
	// Status tells whether others can reach the node, and how.
	Status(ctx context.Context) (*api.Status, error)
	// Connect dials the peer at addr (a multiaddr ending in /p2p/ID).
	Connect(ctx context.Context, addr string) (*api.ConnectResponse, error)
	// Find looks for peers advertising rendezvous, for at most timeout
	// (zero: DefaultFindTimeout). An empty list means none was found.
	Find(ctx context.Context, rendezvous string, timeout time.Duration) ([]api.FoundPeer, error)
	// Listen serves a protocol by dialling a local target for each inbound
	// stream. req.Foreground must be false: see ListenForeground.
	Listen(ctx context.Context, req api.ListenRequest) (*api.Listener, error)
	// Forward opens a local port whose connections become streams to a
	// peer. req.Foreground must be false: see ForwardForeground.
	Forward(ctx context.Context, req api.ForwardRequest) (*api.Listener, error)
	// ListenForeground is Listen for a listener that lives only as long as
	// the returned Tunnel is open and ctx is not done.
	ListenForeground(ctx context.Context, req api.ListenRequest) (*Tunnel, error)
	// ForwardForeground is Forward for a forward that lives only as long as
	// the returned Tunnel is open and ctx is not done.
	ForwardForeground(ctx context.Context, req api.ForwardRequest) (*Tunnel, error)
	// Listeners lists listeners: forwards first, then listens.
	Listeners(ctx context.Context) ([]api.Listener, error)
	// Close closes the listeners req matches and says how many it closed.
	Close(ctx context.Context, req api.CloseRequest) (int, error)
	// RetryListeners retries the failed listeners (persisted entries that
	// could not be restored) now, then lists listeners like Listeners.
	RetryListeners(ctx context.Context) ([]api.Listener, error)
	// Streams lists the open bridged streams.
	Streams(ctx context.Context) ([]api.Stream, error)
	// CloseStreams resets one stream or all of them and says how many.
	CloseStreams(ctx context.Context, req api.StreamCloseRequest) (int, error)
	// Events subscribes to the daemon's live events until ctx is done or
	// the stream is closed.
	Events(ctx context.Context) (*EventStream, error)
	// CloseIdleConnections closes the kept-alive API connections that are
	// idle. A program that drops a Client should call it.
	CloseIdleConnections()
}

// defaultClient talks to one daemon.
type defaultClient struct {
	cfg  Config // validated; read-only
	rt   http.RoundTripper
	http *http.Client
}

var _ Client = (*defaultClient)(nil)

// NewDefaultClient returns a Client for the daemon cfg describes; a nil or
// zero cfg means the default repo's daemon. It checks cfg but does no I/O:
// a daemon that is not running shows up as ErrUnreachable on the first call,
// and the repo's api and token files are read when needed, so the client
// follows a daemon that restarts on another address or with a new token.
func NewDefaultClient(cfg *Config) (Client, error) {
	return newDefaultClient(cfg)
}

func newDefaultClient(cfg *Config) (*defaultClient, error) {
	c := Config{}
	if cfg != nil {
		c = *cfg
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	tokens, err := c.tokens()
	if err != nil {
		return nil, err
	}
	dc := &defaultClient{cfg: c}
	dc.rt = newTransport(&dc.cfg, tokens)
	dc.http = &http.Client{Transport: dc.rt}
	return dc, nil
}

func (c *defaultClient) CloseIdleConnections() { closeIdle(c.rt) }

// describe names the daemon in messages: its API address, or the repo.
func (c *defaultClient) describe() string {
	if ep, err := c.cfg.resolve(); err == nil {
		return ep.Multiaddr
	}
	if c.cfg.APIAddr != "" {
		return c.cfg.APIAddr
	}
	if repo, err := c.cfg.repoPath(); err == nil {
		return "repo " + repo
	}
	return "the default repo"
}

// withTimeout bounds a non-stream request by the configured timeout plus
// extra (the time the daemon is asked to spend, for Find).
func (c *defaultClient) withTimeout(ctx context.Context, extra time.Duration) (context.Context, context.CancelFunc) {
	d := c.cfg.timeout() + extra
	return context.WithTimeoutCause(ctx, d,
		fmt.Errorf("no answer within %s: %w", d, context.DeadlineExceeded))
}

// do sends one request under the per-request timeout and decodes the JSON
// answer into out (if non-nil).
func (c *defaultClient) do(ctx context.Context, extra time.Duration, method, route string, in, out any) error {
	ctx, cancel := c.withTimeout(ctx, extra)
	defer cancel()
	resp, ep, err := c.send(ctx, method, route, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("the daemon at %s did not finish answering %s %s: %w", ep.Multiaddr, method, route, context.Cause(ctx))
		case errors.As(err, &se), errors.As(err, &te):
			return fmt.Errorf("decoding the daemon's answer to %s %s: %w", method, route, err)
		}
		return &UnreachableError{Addr: ep.Multiaddr, Repo: c.cfg.Repo, Sent: true, Err: err}
	}
	return nil
}

// send sends one request and returns a 2xx response, or the daemon's error
// turned into a Go error. It also returns the endpoint it used.
func (c *defaultClient) send(ctx context.Context, method, route string, in any) (*http.Response, Endpoint, error) {
	ep, err := c.cfg.resolve()
	if err != nil {
		return nil, ep, err
	}
	host := ep.Address
	if ep.Network == "unix" {
		host = "localhost" // the daemon checks Host; the dialer knows the socket
	}
	var body io.Reader
	if in != nil {
		payload, err := json.Marshal(in)
		if err != nil {
			return nil, ep, fmt.Errorf("encoding the request: %w", err)
		}
		body = bytes.NewReader(payload)
	}
	// Tell "never sent" from "sent, then the connection broke": only the
	// first is always safe to send to another daemon.
	var wrote atomic.Bool
	trace := &httptrace.ClientTrace{WroteRequest: func(i httptrace.WroteRequestInfo) {
		if i.Err == nil {
			wrote.Store(true)
		}
	}}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), method, "http://"+host+route, body)
	if err != nil {
		return nil, ep, fmt.Errorf("building the request: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, ep, c.transportError(ctx, ep, method, route, wrote.Load(), err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, ep, decodeError(resp)
	}
	return resp, ep, nil
}

// transportError classifies an error of http.Client.Do.
func (c *defaultClient) transportError(ctx context.Context, ep Endpoint, method, route string, sent bool, err error) error {
	var unreachable *UnreachableError
	if errors.As(err, &unreachable) {
		return unreachable // from the dialer: nothing was sent
	}
	var tokErr *tokenError
	if errors.As(err, &tokErr) {
		return tokErr.err
	}
	if ctx.Err() != nil {
		return fmt.Errorf("the daemon at %s did not answer %s %s: %w", ep.Multiaddr, method, route, context.Cause(ctx))
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return &UnreachableError{Addr: ep.Multiaddr, Repo: c.cfg.Repo, Sent: sent, Err: err}
}

// decodeError turns a non-2xx answer into an *Error.
func decodeError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e api.Error
	if err := json.Unmarshal(b, &e); err != nil || e.Message == "" {
		msg := string(bytes.TrimSpace(b))
		if msg == "" {
			msg = resp.Status
		}
		return &Error{Status: resp.StatusCode, Code: codeForStatus(resp.StatusCode), Message: msg}
	}
	if e.Code == "" {
		e.Code = codeForStatus(resp.StatusCode)
	}
	return &Error{Status: resp.StatusCode, Code: e.Code, Message: e.Message}
}

func codeForStatus(status int) string {
	switch status {
	case http.StatusBadRequest:
		return api.CodeBadRequest
	case http.StatusUnauthorized:
		return api.CodeUnauthorized
	case http.StatusForbidden:
		return api.CodeForbidden
	case http.StatusNotFound:
		return api.CodeNotFound
	case http.StatusConflict:
		return api.CodeConflict
	case http.StatusServiceUnavailable:
		return api.CodeUnavailable
	}
	return api.CodeInternal
}

func (c *defaultClient) ID(ctx context.Context) (*api.ID, error) {
	var out api.ID
	if err := c.do(ctx, 0, http.MethodGet, api.RouteID, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func (c *defaultClient) Peers(ctx context.Context) ([]api.Peer, error) {
	out := []api.Peer{}
	if err := c.do(ctx, 0, http.MethodGet, api.RoutePeers, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *defaultClient) Connect(ctx context.Context, addr string) (*api.ConnectResponse, error) {
	var out api.ConnectResponse
	if err := c.do(ctx, 0, http.MethodPost, api.RouteConnect, api.ConnectRequest{Address: addr}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func (c *defaultClient) Find(ctx context.Context, rendezvous string, timeout time.Duration) ([]api.FoundPeer, error) {
	if timeout < 0 {
		return nil, fmt.Errorf("find timeout must not be negative, got %s", timeout)
	}
	search := timeout
	if search == 0 {
		search = DefaultFindTimeout
	}
	out := []api.FoundPeer{}
	req := api.FindRequest{Rendezvous: rendezvous, Timeout: api.Duration(timeout)}
	if err := c.do(ctx, search, http.MethodPost, api.RouteFind, req, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// errForeground is returned when Listen or Forward is asked for a
// foreground entry, which needs the held request of the *Foreground methods.
var errForeground = errors.New("a foreground listener needs ListenForeground or ForwardForeground")

func (c *defaultClient) Listen(ctx context.Context, req api.ListenRequest) (*api.Listener, error) {
	if req.Foreground {
		return nil, errForeground
	}
	var out api.Listener
	if err := c.do(ctx, 0, http.MethodPost, api.RouteListen, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func (c *defaultClient) Forward(ctx context.Context, req api.ForwardRequest) (*api.Listener, error) {
	if req.Foreground {
		return nil, errForeground
	}
	var out api.Listener
	if err := c.do(ctx, 0, http.MethodPost, api.RouteForward, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func (c *defaultClient) Listeners(ctx context.Context) ([]api.Listener, error) {
	out := []api.Listener{}
	if err := c.do(ctx, 0, http.MethodGet, api.RouteListeners, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *defaultClient) RetryListeners(ctx context.Context) ([]api.Listener, error) {
	out := []api.Listener{}
	if err := c.do(ctx, 0, http.MethodPost, api.RouteRetry, struct{}{}, &out); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *defaultClient) Close(ctx context.Context, req api.CloseRequest) (int, error) {
	var out api.CloseResponse
	if err := c.do(ctx, 0, http.MethodPost, api.RouteClose, req, &out); err != nil {
		return 0, err
	}
	return out.Closed, nil
}

func (c *defaultClient) Streams(ctx context.Context) ([]api.Stream, error) {
	out := []api.Stream{}
	if err := c.do(ctx, 0, http.MethodGet, api.RouteStreams, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *defaultClient) CloseStreams(ctx context.Context, req api.StreamCloseRequest) (int, error) {
	var out api.CloseResponse
	if err := c.do(ctx, 0, http.MethodPost, api.RouteStreamsClose, req, &out); err != nil {
		return 0, err
	}
	return out.Closed, nil
}
