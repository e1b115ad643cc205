package discovery

import (
	"context"
	"slices"
	"testing"
	"time"
)

// BenchmarkJoinToFound measures, on a bootstrapped 10-node loopback DHT with
// default options (mode auto, default find intervals), the time from two
// nodes calling Join to both having reported the other. Network setup is
// not timed. It reports the median over the iterations; run it with
// -benchtime=5x for a median of 5.
func BenchmarkJoinToFound(b *testing.B) {
	var samples []time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		ctx, cancel := context.WithCancel(context.Background())
		nodes := startNetwork(b, ctx, 10)
		waitBootstrapped(b, nodes)
		x, y := nodes[1], nodes[2]
		b.StartTimer()

		start := time.Now()
		for _, n := range []*node{x, y} {
			if err := n.s.Join("bench"); err != nil {
				b.Fatal(err)
			}
		}
		for x.rec.count("bench", y.h.ID()) == 0 || y.rec.count("bench", x.h.ID()) == 0 {
			if time.Since(start) > time.Minute {
				b.Fatal("no mutual discovery within a minute")
			}
			time.Sleep(time.Millisecond)
		}
		samples = append(samples, time.Since(start))

		b.StopTimer()
		cancel()
		for _, n := range nodes {
			n.rec.check(b)
			n.close(b)
		}
		b.StartTimer()
	}
	slices.Sort(samples)
	b.ReportMetric(float64(samples[len(samples)/2].Microseconds())/1000, "ms-median")
	b.Logf("join to mutual discovery, sorted: %v", samples)
}
