package e2e

import (
	"encoding/json"
	"fmt"
	"sort"
	"testing"
	"time"
)

// BenchmarkDaemonStartToAPI measures the time from starting `p2pd daemon`
// to its API answering `p2pd id`-equivalent requests (the readiness lines
// are printed after the API is serving).
//
//	go test -run '^$' -bench DaemonStartToAPI -benchtime 5x ./e2e/
func BenchmarkDaemonStartToAPI(b *testing.B) {
	var ds []time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		n := startDaemon(b, "--bootstrap", "none", "--dht", "server", "--dht-prefix", "/bench-start")
		var id struct{ ID string }
		n.mustJSON(&id, "id")
		// The CLI's own start-up is not the daemon's: count to the ready line.
		ds = append(ds, n.readyAt.Sub(start))
		n.kill()
	}
	reportMedian(b, "ms/start", ds)
}

// BenchmarkRendezvousTenProcesses measures, in a network of ten daemon
// processes on one private DHT, the time from starting the two rendezvous
// nodes to one of them finding the other with `p2pd find`.
//
//	go test -run '^$' -bench RendezvousTenProcesses -benchtime 5x ./e2e/
func BenchmarkRendezvousTenProcesses(b *testing.B) {
	var ds []time.Duration
	for i := 0; i < b.N; i++ {
		prefix := fmt.Sprintf("/bench-rdv-%d", i)
		boot := startDaemon(b, "--bootstrap", "none", "--dht", "server", "--dht-prefix", prefix)
		var others []*node
		for j := 0; j < 7; j++ {
			others = append(others, startDaemon(b, "--bootstrap", boot.addr(), "--dht-prefix", prefix))
		}
		start := time.Now()
		x := startDaemon(b, "--bootstrap", boot.addr(), "--dht-prefix", prefix, "--rendezvous", "bench")
		y := startDaemon(b, "--bootstrap", boot.addr(), "--dht-prefix", prefix, "--rendezvous", "bench")
		for {
			r := x.cli("find", "bench", "--json", "--timeout", "30s")
			var found []foundPeer
			json.Unmarshal([]byte(r.stdout), &found)
			if len(found) > 0 && found[0].ID == y.id {
				break
			}
			if time.Since(start) > time.Minute {
				b.Fatalf("not found within a minute: %s", r)
			}
		}
		ds = append(ds, time.Since(start))
		for _, n := range append(others, boot, x, y) {
			n.kill()
		}
	}
	reportMedian(b, "ms/found", ds)
}

func reportMedian(b *testing.B, unit string, ds []time.Duration) {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	med := ds[len(ds)/2]
	b.ReportMetric(float64(med)/float64(time.Millisecond), "median-"+unit)
	b.ReportMetric(float64(ds[0])/float64(time.Millisecond), "min-"+unit)
	b.ReportMetric(float64(ds[len(ds)-1])/float64(time.Millisecond), "max-"+unit)
	b.Logf("%s: %v", unit, ds)
}
