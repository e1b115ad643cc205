package fastpath

import (
	"fmt"
	"net"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/p2pd/p2pd/streams"
	"github.com/p2pd/p2pd/streams/streamstest"
)

// TestPollerDies kills the poller under parked connections: every parked
// connection is woken and keeps working in a goroutine of its own, the
// engine refuses new pumps, and the registry bridges new streams with its
// plain bridge and counts the failure in its metric, once; both log it.
func TestPollerDies(t *testing.T) {
	const conns = 10
	logs := captureErrorLogs(t)
	var eng *Engine
	metrics := prometheus.NewRegistry()
	tun := streamstest.NewTunnel(t, streamstest.Echo, streamstest.Config{
		OptsA: func() []streams.Option {
			var err error
			if eng, err = New(WithParkDelay(0)); err != nil {
				t.Fatal(err)
			}
			return []streams.Option{streams.WithEngine(eng), streams.WithPrometheusRegisterer(metrics)}
		}(),
		OptsB: engineOpts()(),
	})
	var cs []net.Conn
	for i := range conns {
		c := tun.Dial(t)
		streamstest.PingConn(t, c, fmt.Sprintf("before %d", i))
		cs = append(cs, c)
	}
	streamstest.WaitFor(t, "A's bridges to park", func() bool {
		return parked(eng) == conns
	})

	eng.mu.Lock()
	p := eng.poll
	eng.mu.Unlock()
	_ = p.file.Close() // not close(): the poller dies as if its epoll fd failed
	streamstest.WaitFor(t, "the engine to fail", func() bool { return !eng.working() })
	// The engine fails first, then wakes the parked connections.
	streamstest.WaitFor(t, "the dead poller to wake every parked connection", func() bool { return parked(eng) == 0 })
	for i, c := range cs {
		streamstest.PingConn(t, c, fmt.Sprintf("after %d", i))
	}
	if _, err := eng.NewPump(nil, nil, nil); err == nil {
		t.Fatal("NewPump on a failed engine succeeded")
	}

	if got := failures(t, metrics); got != 0 {
		t.Fatalf("failures counted before any new stream: %v", got)
	}
	for i := range 3 {
		c := tun.Dial(t)
		streamstest.PingConn(t, c, fmt.Sprintf("new %d", i))
		streamstest.PingConn(t, c, "and again")
	}
	if got := failures(t, metrics); got != 1 {
		t.Fatalf("p2pd_streams_engine_failures_total = %v, want 1", got)
	}
	wantErrorLogged(t, logs, "p2pd/fastpath", "poller of idle connections died") // the engine, as it fails
	wantErrorLogged(t, logs, "p2pd/streams", "poller of idle connections died")  // the registry, as it falls back
	for i, c := range cs {
		streamstest.PingConn(t, c, fmt.Sprintf("still %d", i))
	}
}

// parked counts the bridges waiting in e's poller.
func parked(e *Engine) int {
	e.mu.Lock()
	p := e.poll
	e.mu.Unlock()
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.waiters)
}

// failures returns the registry's count of engine failures.
func failures(t *testing.T, metrics *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "p2pd_streams_engine_failures_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatal("no p2pd_streams_engine_failures_total metric")
	return 0
}
