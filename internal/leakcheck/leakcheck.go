// Package leakcheck is goleak's check for a test binary's end, with the
// patience go-libp2p needs and one known go-libp2p race excused, exactly.
//
// The race (go-libp2p v0.51.0, p2p/host/autorelay/autorelay.go): AutoRelay's
// background goroutine selects on its context and on reachability events.
// Close cancels the context, stops the relay finder and waits for
// background; but when an EvtLocalReachabilityChanged (private or unknown)
// is already waiting, select may pick it after the cancel, and background
// calls relayFinder.Start() after Close's relayFinder.Stop(). Start makes a
// new context of its own, so the finder's four goroutines (background,
// findNodes, handleNewCandidates, cleanupDisconnectedPeers) run forever.
// Reported upstream as: "autorelay: a reachability event racing Close
// restarts the relay finder after Stop, leaking its goroutines"; the fix is
// for background to check r.ctx.Err() before acting on an event (or for
// relayFinder.Start to refuse after Close). It shows under CPU load: 19 runs
// in 300 of host's TestNATTraversalBuilds beside a busy-looping process.
//
// Only those four goroutines are excused, and only when nothing else is
// left: AutoRelay's own background goroutine, or anything of the host, is
// still a leak.
package leakcheck

import (
	"fmt"
	"os"
	"time"

	"go.uber.org/goleak"
)

// Patience is how long Find waits for goroutines to end after the tests:
// some of go-libp2p's background goroutines end shortly after Close, on a
// loaded machine later than goleak's own patience (about half a second).
const Patience = 10 * time.Second

// relayFinder are the goroutines the autorelay race leaves behind.
var relayFinder = []goleak.Option{
	goleak.IgnoreAnyFunction("github.com/libp2p/go-libp2p/p2p/host/autorelay.(*relayFinder).background"),
	goleak.IgnoreAnyFunction("github.com/libp2p/go-libp2p/p2p/host/autorelay.(*relayFinder).findNodes"),
	goleak.IgnoreAnyFunction("github.com/libp2p/go-libp2p/p2p/host/autorelay.(*relayFinder).handleNewCandidates"),
	goleak.IgnoreAnyFunction("github.com/libp2p/go-libp2p/p2p/host/autorelay.(*relayFinder).cleanupDisconnectedPeers"),
}

// Find reports the goroutines still running after Patience, other than
// those opts ignore. Goroutines of a relay finder restarted by the
// autorelay race are excused (and said so on stderr) when they are all
// that is left.
func Find(opts ...goleak.Option) error { return find(Patience, relayFinder, opts) }

// find is Find with the patience and the excused goroutines as arguments.
func find(patience time.Duration, excused, opts []goleak.Option) error {
	err := goleak.Find(opts...)
	for deadline := time.Now().Add(patience); err != nil && time.Now().Before(deadline); err = goleak.Find(opts...) {
		time.Sleep(200 * time.Millisecond)
	}
	if err == nil {
		return nil
	}
	if goleak.Find(append(append([]goleak.Option{}, opts...), excused...)...) == nil {
		fmt.Fprintln(os.Stderr, "leakcheck: excused the goroutines of an autorelay relay finder restarted after Close (go-libp2p v0.51 race, see package leakcheck)")
		return nil
	}
	return err
}
