package client_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/p2pd/p2pd/api"
	"github.com/p2pd/p2pd/client"
	"github.com/p2pd/p2pd/daemon"
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
// forward twice: with no event subscriber, then with subscribers that never
// read (one per daemon inside the process with room for one event, and an
// HTTP event stream nobody reads). The bytes must arrive intact both times
// and the stuck subscribers must have lost events rather than held anything
// up. The time ratio is logged, not asserted.
func TestNeverReadingSubscriberDoesNotSlowTransfer(t *testing.T) {
	const size = 256 << 20
	a, b := startInProcess(t), startInProcess(t)
	ctx := testContext(t)
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

	without := transfer("without subscribers")

	subA, subB := a.SubscribeEvents(1), b.SubscribeEvents(1)
	defer subA.Close()
	defer subB.Close()
	httpCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stuck, err := ca.Events(httpCtx)
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	// Fill the in-process queues before the transfer starts.
	for i := 0; i < 3; i++ {
		if _, err := ca.Listen(ctx, api.ListenRequest{Protocol: "/x/fill", Target: "/ip4/127.0.0.1/tcp/9"}); err != nil {
			t.Fatal(err)
		}
		if _, err := ca.Close(ctx, api.CloseRequest{Protocol: "/x/fill"}); err != nil {
			t.Fatal(err)
		}
	}
	with := transfer("with never-reading subscribers")

	if subA.Dropped() == 0 || subB.Dropped() == 0 {
		t.Errorf("stuck subscribers lost %d (A) and %d (B) events; want both > 0, or they were never full", subA.Dropped(), subB.Dropped())
	}
	mib := float64(size) / (1 << 20)
	t.Logf("256 MiB through a forward: %v without subscribers (%.0f MiB/s), %v with never-reading ones (%.0f MiB/s); ratio with/without %.2f; events lost by the stuck subscribers: A %d, B %d",
		without.Round(time.Millisecond), mib/without.Seconds(), with.Round(time.Millisecond), mib/with.Seconds(),
		with.Seconds()/without.Seconds(), subA.Dropped(), subB.Dropped())
}
