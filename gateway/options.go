package gateway

import (
	"errors"
	"fmt"
	"time"
)

const (
	// DefaultTimeout bounds how long a request waits for its peer to be
	// reached and for the peer's service to start answering; then the
	// gateway answers 504. A response that has started may take as long as
	// it needs.
	DefaultTimeout = time.Minute

	// DefaultIdleTimeout is how long a client connection to the gateway
	// may stay idle between requests, and how long a stream kept for a
	// client connection may stay unused, before either is closed.
	DefaultIdleTimeout = 2 * time.Minute

	// readHeaderTimeout bounds how long a client may take to send a
	// request's headers.
	readHeaderTimeout = 30 * time.Second

	// bufferSize is the size of the pooled buffers that copy bodies
	// (net/http/httputil's own default).
	bufferSize = 32 << 10
)

// config holds a Gateway's settings; see defaultConfig.
type config struct {
	allowRemote bool
	timeout     time.Duration
	idleTimeout time.Duration
	finder      RendezvousFinder
}

func defaultConfig() config {
	return config{timeout: DefaultTimeout, idleTimeout: DefaultIdleTimeout}
}

// Option configures a Gateway. Options check their own arguments; New
// reports the first invalid one.
type Option func(*config) error

// AllowRemote lets the gateway listen on an address other than loopback,
// and answer requests for any Host. Without it, a non-loopback address is
// refused (anyone who can reach it could use this node's peers) and so is
// a request whose Host is not a loopback address or localhost (a web page
// that re-points its own name at 127.0.0.1, DNS rebinding, must not read
// peers' services through the browser).
func AllowRemote(allow bool) Option {
	return func(c *config) error {
		c.allowRemote = allow
		return nil
	}
}

// Timeout sets how long a request may wait for its peer to be reached and
// to start answering (DefaultTimeout otherwise); then the gateway answers
// 504. It must be positive.
func Timeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("gateway timeout must be positive, got %s", d)
		}
		c.timeout = d
		return nil
	}
}

// IdleTimeout sets how long an idle client connection, or a stream kept
// for it, stays open (DefaultIdleTimeout otherwise). It must be positive.
func IdleTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("gateway idle timeout must be positive, got %s", d)
		}
		c.idleTimeout = d
		return nil
	}
}

// WithRendezvousFinder lets URLs name their peer as @NAME: a peer found
// advertising rendezvous NAME through f that serves the protocol, the same
// one while it works. Without it such URLs get 400.
func WithRendezvousFinder(f RendezvousFinder) Option {
	return func(c *config) error {
		if f == nil {
			return errors.New("rendezvous finder is nil")
		}
		c.finder = f
		return nil
	}
}
