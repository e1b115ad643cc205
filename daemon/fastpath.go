package daemon

import (
	"fmt"
	"os"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/p2pd/p2pd/fastpath"
	p2phost "github.com/p2pd/p2pd/host"
	"github.com/p2pd/p2pd/streams"
)

// FastPathEnv names the environment variable that switches the fast path
// off: with P2PD_FAST_PATH=off the daemon bridges streams with the stream
// registry's plain bridge and secures connections with go-libp2p's own TLS
// transport, the reference behaviour of both. For telling a fast-path bug
// from any other, and for measuring what the fast path buys.
const FastPathEnv = "P2PD_FAST_PATH"

// fastPath reads FastPathEnv: on (or unset) or off.
func fastPath() (bool, error) {
	switch v := os.Getenv(FastPathEnv); v {
	case "", "on":
		return true, nil
	case "off":
		return false, nil
	default:
		return false, fmt.Errorf("%s=%q: want on or off", FastPathEnv, v)
	}
}

// fastPathHostOptions is the host's half of the fast path: TLS whose
// records of one write leave in one system call (fastpath.CorkedTLS).
func fastPathHostOptions(on bool) []p2phost.Option {
	if !on {
		return nil
	}
	return []p2phost.Option{p2phost.TLSTransport(fastpath.NewCorkedTLS)}
}

// newStreamRegistry makes the daemon's stream registry. With the fast path
// on, its bridge is package fastpath's engine, with the registry's plain
// bridge as the loud fallback if the engine fails (logged as an error and
// counted in p2pd_streams_engine_failures_total); with it off, the plain
// bridge throughout.
func newStreamRegistry(fast bool, cm connmgr.ConnManager, reg prometheus.Registerer, opts ...streams.Option) (*streams.Registry, error) {
	opts = append([]streams.Option{
		streams.WithConnManager(cm),
		streams.WithPrometheusRegisterer(reg),
	}, opts...)
	var eng *fastpath.Engine
	if fast {
		var err error
		if eng, err = fastpath.New(); err != nil {
			return nil, fmt.Errorf("fast bridge: %w", err)
		}
		opts = append(opts, streams.WithEngine(eng))
	}
	r, err := streams.New(opts...)
	if err != nil {
		if eng != nil {
			_ = eng.Close()
		}
		return nil, fmt.Errorf("stream registry: %w", err)
	}
	return r, nil
}
