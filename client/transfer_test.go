package client_test

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/p2pd/p2pd/api"
	"github.com/p2pd/p2pd/client"
	"github.com/p2pd/p2pd/daemon"
	"github.com/p2pd/p2pd/events"
	"github.com/p2pd/p2pd/repo"
)

// inProcess is a daemon running inside the test process.
type inProcess struct {
	*daemon.Daemon
	repo string
}

// startInProcess starts a daemon in this process on a fresh repo, for tests
// that need to reach inside it; the test's cleanup closes it.
func startInProcess(t *testing.T) inProcess {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	r, err := repo.Init(dir)
	if err != nil {
		t.Fatal(err)
	}
	d, err := daemon.New(r,
		daemon.ListenAddrs(ma.StringCast("/ip4/127.0.0.1/tcp/0")),
		daemon.APIAddr(ma.StringCast("/ip4/127.0.0.1/tcp/0")),
		daemon.Bootstrap(),
		daemon.DHT("server", "/clienttest"),
		daemon.MDNS(false),
	)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(testContext(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("closing daemon: %v", err)
		}
	})
	return inProcess{Daemon: d, repo: dir}
}

// TestNeverReadingSubscriberDoesNotSlowTransfer sends 256 MiB through a
// forward, alternately with no event subscriber and with subscribers that
// never read (one per daemon inside the process with room for one event,
// and an HTTP event stream nobody reads). The bytes must arrive intact every
// time and the stuck subscribers must have lost events rather than held
// anything up. The time ratio is logged, not asserted.
func TestNeverReadingSubscriberDoesNotSlowTransfer(t *testing.T) {
	const size = 256 << 20
	a, b := startInProcess(t), startInProcess(t)
	// Five 256 MiB transfers under -race on a busy 2-core machine can take
	// minutes: the deadline is a safety net, not a measure.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	ca, cb := newClient(t, &client.Config{Repo: a.repo}), newClient(t, &client.Config{Repo: b.repo})

	sink, results := startSink(t, nil)
	if _, err := cb.Listen(ctx, api.ListenRequest{Protocol: "/x/bulk", Target: sink.String()}); err != nil {
		t.Fatal(err)
	}
	target := b.Host().Addrs()[0].Encapsulate(ma.StringCast("/p2p/" + b.Host().ID().String()))
	if _, err := peer.AddrInfoFromP2pAddr(target); err != nil {
		t.Fatal(err)
	}
	fwd, err := ca.Forward(ctx, api.ForwardRequest{Protocol: "/x/bulk", Listen: "/ip4/127.0.0.1/tcp/0", Target: target.String()})
	if err != nil {
		t.Fatal(err)
	}

	transfer := func(label string) time.Duration {
		t.Helper()
		start := time.Now()
		sentSum, _, _, err := sendThrough(fwd.ListenAddress, size)
		if err != nil {
			t.Fatalf("%s: %v", label, err)
		}
		r := <-results
		elapsed := time.Since(start)
		if r.err != nil || r.n != size || r.sum != sentSum {
			t.Fatalf("%s: the service read %d bytes (err %v), want %d with the SHA-256 sent", label, r.n, r.err, size)
		}
		return elapsed
	}

	// Warm up the connection (and the buffer pools) with a small transfer.
	if _, _, _, err := sendThrough(fwd.ListenAddress, 1<<20); err != nil {
		t.Fatal(err)
	}
	if r := <-results; r.err != nil || r.n != 1<<20 {
		t.Fatalf("warm-up: the service read %d bytes (err %v)", r.n, r.err)
	}

	// run does one transfer, with or without three subscribers that never
	// read: one per daemon in process with room for one event, and an HTTP
	// event stream on A. Both cases do the same API calls first (which fill
	// the stuck queues) and a GC, so they differ only in the subscribers.
	run := func(stuck bool) time.Duration {
		t.Helper()
		var subs []*events.Subscription
		if stuck {
			subs = append(subs, a.SubscribeEvents(1), b.SubscribeEvents(1))
			es, err := ca.Events(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer es.Close()
		}
		for _, c := range []client.Client{ca, cb} {
			for i := 0; i < 3; i++ {
				if _, err := c.Listen(ctx, api.ListenRequest{Protocol: "/x/fill", Target: "/ip4/127.0.0.1/tcp/9"}); err != nil {
					t.Fatal(err)
				}
				if _, err := c.Close(ctx, api.CloseRequest{Protocol: "/x/fill"}); err != nil {
					t.Fatal(err)
				}
			}
		}
		lost := make([]uint64, len(subs))
		for i, s := range subs {
			lost[i] = s.Dropped()
		}
		runtime.GC()
		d := transfer(fmt.Sprintf("stuck subscribers %t", stuck))
		// Each daemon published at least stream_opened during the
		// transfer, which its full subscriber lost instead of waiting.
		for i, s := range subs {
			if s.Dropped() <= lost[i] {
				t.Errorf("stuck subscriber %d lost no event during the transfer: it was not full, or was waited for", i)
			}
			s.Close()
		}
		return d
	}

	// Without, with, with, without: order effects cancel out in the sums.
	var without, with time.Duration
	for _, stuck := range []bool{false, true, true, false} {
		if d := run(stuck); stuck {
			with += d
		} else {
			without += d
		}
	}
	mib := float64(2*size) / (1 << 20)
	t.Logf("256 MiB through a forward, 2 runs each: %v without subscribers (%.0f MiB/s), %v with never-reading ones (%.0f MiB/s); ratio with/without %.2f",
		(without / 2).Round(time.Millisecond), mib/without.Seconds(), (with / 2).Round(time.Millisecond), mib/with.Seconds(),
		with.Seconds()/without.Seconds())
}
