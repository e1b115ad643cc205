package daemon

import (
	"fmt"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/p2pd/p2pd/fastpath"
	"github.com/p2pd/p2pd/streams"
)

// newStreamRegistry makes the daemon's stream registry. This is the one
// place the bridge is chosen: package fastpath's engine, with the
// registry's plain bridge as the loud fallback if the engine fails (logged
// as an error and counted in p2pd_streams_engine_failures_total).
func newStreamRegistry(cm connmgr.ConnManager, reg prometheus.Registerer, opts ...streams.Option) (*streams.Registry, error) {
	eng, err := fastpath.New()
	if err != nil {
		return nil, fmt.Errorf("fast bridge: %w", err)
	}
	opts = append([]streams.Option{
		streams.WithConnManager(cm),
		streams.WithEngine(eng),
		streams.WithPrometheusRegisterer(reg),
	}, opts...)
	r, err := streams.New(opts...)
	if err != nil {
		_ = eng.Close()
		return nil, fmt.Errorf("stream registry: %w", err)
	}
	return r, nil
}
