package streams

import (
	"errors"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/prometheus/client_golang/prometheus"
)

const (
	// DefaultProtectTag is the connection-manager tag under which a peer is
	// protected while it has open bridged streams.
	DefaultProtectTag = "p2pd-streams"
)

// config holds the settings of a Registry. Its zero value is not used; see
// defaultConfig.
type config struct {
	cm         connmgr.ConnManager
	protectTag string
	onOpen     func(Info)
	onClose    func(Info, error)
	engine     Engine
	registerer prometheus.Registerer
}

func defaultConfig() config {
	return config{protectTag: DefaultProtectTag}
}

// Option configures a Registry. Options check their own arguments and make
// NewRegistry panic (or New fail) when given something invalid.
type Option func(*config) error

// WithConnManager makes the registry protect a peer in cm while it has at
// least one open bridged stream, so that connection trimming does not cut a
// live tunnel. libp2p's Protect is not counted, so the registry counts streams
// per peer itself and unprotects the peer when its last stream ends.
func WithConnManager(cm connmgr.ConnManager) Option {
	return func(c *config) error {
		if cm == nil {
			return errors.New("connection manager is nil")
		}
		c.cm = cm
		return nil
	}
}

// WithProtectTag sets the tag used with WithConnManager. The default is
// DefaultProtectTag.
func WithProtectTag(tag string) Option {
	return func(c *config) error {
		if tag == "" {
			return errors.New("protect tag is empty")
		}
		c.protectTag = tag
		return nil
	}
}

// WithOnOpen registers a function called once for every stream the registry
// accepts, before any byte is copied. It runs in the goroutine that called
// Bridge and must not block for long.
func WithOnOpen(f func(Info)) Option {
	return func(c *config) error {
		if f == nil {
			return errors.New("open hook is nil")
		}
		c.onOpen = f
		return nil
	}
}

// WithOnClose registers a function called once for every stream when it has
// ended, been removed from the registry and its peer unprotected. info holds
// the final byte counts. err is nil when both directions ended with a clean
// end of stream, and otherwise says why the stream was reset (ErrResetRequested,
// ErrClosed, or the I/O error). It runs in a bridge goroutine and must not call
// Registry.Close.
func WithOnClose(f func(info Info, err error)) Option {
	return func(c *config) error {
		if f == nil {
			return errors.New("close hook is nil")
		}
		c.onClose = f
		return nil
	}
}

// WithEngine makes the registry bridge streams with e (package fastpath)
// instead of its plain bridge; the registry owns e from then on and closes
// it in Close. If e fails, the registry logs it as an error, counts it in
// the metric p2pd_streams_engine_failures_total and bridges every later
// stream with the plain bridge; the streams e already bridges go on.
func WithEngine(e Engine) Option {
	return func(c *config) error {
		if e == nil {
			return errors.New("bridge engine is nil")
		}
		c.engine = e
		return nil
	}
}

// WithPrometheusRegisterer registers the registry's metrics with reg:
// p2pd_streams_engine_failures_total, the failures of the engine
// (WithEngine) after which streams are bridged with the plain bridge.
func WithPrometheusRegisterer(reg prometheus.Registerer) Option {
	return func(c *config) error {
		if reg == nil {
			return errors.New("prometheus registerer is nil")
		}
		c.registerer = reg
		return nil
	}
}
