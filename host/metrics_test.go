package host

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
)

// libp2pFamilies lists the metric families g gathers whose name starts
// with libp2p_.
func libp2pFamilies(t *testing.T, g prometheus.Gatherer) []string {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "libp2p_") {
			names = append(names, mf.GetName())
		}
	}
	sort.Strings(names)
	return names
}

// TestMetrics shows that PrometheusRegisterer puts go-libp2p's metric
// families, except the resource manager's, into the given registry once a
// connection exists, and that neither that nor a host with metrics off (the
// default) ever registers anything with prometheus.DefaultRegisterer.
func TestMetrics(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	reg := prometheus.NewRegistry()
	a := newHost(t, ListenAddrs(loopTCP, loopQUIC), PrometheusRegisterer(reg))
	b := newHost(t, ListenAddrs(loopTCP, loopQUIC)) // metrics off
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatal(err)
	}
	if err := b.Connect(ctx, peer.AddrInfo{ID: a.ID(), Addrs: a.Addrs()}); err != nil {
		t.Fatal(err)
	}

	got := waitForFamilies(ctx, t, reg,
		"libp2p_eventbus_events_emitted_total",
		"libp2p_identify_identify_pushes_triggered_total",
		"libp2p_swarm_connections_opened_total",
	)
	t.Logf("%d libp2p metric families in the given registry", len(got))
	for _, n := range got {
		if strings.HasPrefix(n, "libp2p_rcmgr_") {
			t.Fatalf("resource manager family %s registered without ResourceManagerMetrics", n)
		}
	}

	if leaked := libp2pFamilies(t, prometheus.DefaultGatherer); len(leaked) > 0 {
		t.Fatalf("prometheus.DefaultRegisterer got libp2p families: %v", leaked)
	}
}

// TestResourceManagerMetrics shows that ResourceManagerMetrics adds the
// resource manager's families, with the connection counted.
func TestResourceManagerMetrics(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	reg := prometheus.NewRegistry()
	a := newHost(t, ListenAddrs(loopTCP), PrometheusRegisterer(reg), ResourceManagerMetrics(true))
	b := newHost(t, ListenAddrs(loopTCP))
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatal(err)
	}
	waitForFamilies(ctx, t, reg, "libp2p_rcmgr_connections", "libp2p_rcmgr_streams")
	waitFor(ctx, t, "one outbound connection in libp2p_rcmgr_connections", func() bool {
		return gauge(t, reg, "libp2p_rcmgr_connections", map[string]string{"dir": "outbound", "scope": "system"}) == 1
	})
}

// waitForFamilies waits until reg gathers every family in want and
// returns the libp2p families it has then.
func waitForFamilies(ctx context.Context, t *testing.T, reg prometheus.Gatherer, want ...string) []string {
	t.Helper()
	var got []string
	waitFor(ctx, t, "libp2p metric families in the registry", func() bool {
		got = libp2pFamilies(t, reg)
		have := map[string]bool{}
		for _, n := range got {
			have[n] = true
		}
		for _, n := range want {
			if !have[n] {
				return false
			}
		}
		return true
	})
	return got
}

// gauge returns the value of the gauge name with exactly labels, or -1.
func gauge(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue metrics
				}
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}
