package client

import (
	"context"
	"net"
	"net/http"
	"time"
)

// The transport chain, outermost first:
//
//	debugTransport      logs method, path, status and duration (debug level)
//	userAgentTransport  sets User-Agent
//	bearerTransport     sets Authorization, re-reading a rotated token file
//	*http.Transport     dials the API address resolved afresh from the Config
//
// Each layer is an http.RoundTripper that clones the request before changing
// it, as the RoundTripper contract asks.

// NewTransport returns the transport chain for cfg, for use in an
// http.Client of one's own (to scrape the daemon's metrics route, say).
// The transport always dials the daemon cfg names, whatever the URL's host;
// use "http://localhost" URLs, as the daemon refuses foreign Host headers.
func NewTransport(cfg *Config) (http.RoundTripper, error) {
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
	return newTransport(&c, tokens), nil
}

// newTransport builds the chain for a validated cfg, which it keeps.
func newTransport(cfg *Config, tokens *tokenSource) http.RoundTripper {
	dialer := &net.Dialer{Timeout: cfg.dialTimeout(), KeepAlive: 30 * time.Second}
	base := &http.Transport{
		Proxy: nil, // the API is local: never send it (or its token) through a proxy
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			ep, err := cfg.resolve()
			if err != nil {
				return nil, err
			}
			c, err := dialer.DialContext(ctx, ep.Network, ep.Address)
			if err != nil {
				return nil, &UnreachableError{Addr: ep.Multiaddr, Repo: cfg.Repo, Err: err}
			}
			return c, nil
		},
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     30 * time.Second,
	}
	return &debugTransport{
		next: &userAgentTransport{
			ua:   cfg.userAgent(),
			next: &bearerTransport{tokens: tokens, next: base},
		},
	}
}

// closeIdle closes the idle connections of the transport at the end of rt's
// chain.
func closeIdle(rt http.RoundTripper) {
	for {
		switch t := rt.(type) {
		case *debugTransport:
			rt = t.next
		case *userAgentTransport:
			rt = t.next
		case *bearerTransport:
			rt = t.next
		case interface{ CloseIdleConnections() }:
			t.CloseIdleConnections()
			return
		default:
			return
		}
	}
}

// bearerTransport adds "Authorization: Bearer <token>". When the token
// comes from a file and the daemon answers 401, it re-reads the file and, if
// the token changed, sends the request once more with the new one.
type bearerTransport struct {
	tokens *tokenSource
	next   http.RoundTripper
}

func (t *bearerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tok, err := t.tokens.get()
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, &tokenError{err: err}
	}
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", "Bearer "+tok)
	resp, err := t.next.RoundTrip(r)
	if err != nil || resp.StatusCode != http.StatusUnauthorized || !t.tokens.fromFile() {
		return resp, err
	}
	t.tokens.invalidate()
	fresh, err := t.tokens.get()
	if err != nil || fresh == tok || (req.Body != nil && req.GetBody == nil) {
		return resp, nil // nothing better to try: pass the 401 on
	}
	r = req.Clone(req.Context())
	if req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			return resp, nil
		}
		r.Body = body
	}
	resp.Body.Close()
	r.Header.Set("Authorization", "Bearer "+fresh)
	return t.next.RoundTrip(r)
}

// tokenError is a failure to read the token: the request was never sent,
// and no daemon is to blame.
type tokenError struct{ err error }

func (e *tokenError) Error() string { return e.err.Error() }
func (e *tokenError) Unwrap() error { return e.err }

// userAgentTransport sets the User-Agent header.
type userAgentTransport struct {
	ua   string
	next http.RoundTripper
}

func (t *userAgentTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.Header.Set("User-Agent", t.ua)
	return t.next.RoundTrip(r)
}

// debugTransport logs every request at debug level: method, path, status (or
// error) and how long it took until the answer's headers arrived.
type debugTransport struct {
	next http.RoundTripper
}

func (t *debugTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		log.Debugw("api request failed", "method", req.Method, "path", req.URL.Path,
			"duration", time.Since(start), "err", err)
		return nil, err
	}
	log.Debugw("api request", "method", req.Method, "path", req.URL.Path,
		"status", resp.StatusCode, "duration", time.Since(start))
	return resp, nil
}
