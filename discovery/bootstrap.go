package discovery

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Bootstrap timings: retry quickly while the routing table is empty, backing
// off to the DHT's own bootstrap period; once joined, check now and then
// that the table has not emptied.
const (
	bootstrapRetryMin = time.Second
	bootstrapRetryMax = 2 * time.Minute
	bootstrapCheck    = 10 * time.Second
)

// bootstrapLoop keeps the node in the DHT: whenever the routing table is
// empty it connects to all bootstrap peers in parallel, then waits and
// checks again, backing off while the table stays empty. It returns when
// ctx ends.
//
// What it logs is meant for a person reading the daemon's output: when no
// bootstrap peer answers, one warning that says so, why, and what still
// works; then quiet retries (debug); then one line when the node has
// joined the DHT. Each unreachable peer is a debug message.
func (s *Service) bootstrapLoop(ctx context.Context, d *dht.IpfsDHT, peers []peer.AddrInfo) {
	peers = withoutPeer(peers, s.h.ID())
	if len(peers) == 0 {
		log.Infow("no bootstrap peers: joining the DHT only through peers we meet otherwise")
		return
	}
	delay := bootstrapRetryMin
	warned, joined := false, false
	for {
		if d.RoutingTable().Size() > 0 {
			delay = bootstrapRetryMin
			if !sleep(ctx, bootstrapCheck) {
				return
			}
			continue
		}
		n, firstErr := s.connectAll(ctx, peers)
		if n > 0 {
			// Connected peers join the routing table once identify and a
			// lookup check succeed; Bootstrap also starts a refresh.
			if err := d.Bootstrap(ctx); err != nil {
				log.Debugw("triggering a DHT refresh", "err", err)
			}
		} else if !warned && ctx.Err() == nil {
			log.Warn(s.unreachableText(len(peers), firstErr))
			warned = true
		}
		if !sleep(ctx, delay) {
			return
		}
		if size := d.RoutingTable().Size(); size > 0 {
			if !joined || warned {
				log.Infof("joined the DHT: %d peer(s) in the routing table", size)
			}
			joined, warned = true, false
			continue
		}
		delay = min(2*delay, bootstrapRetryMax)
		log.Debugw("DHT routing table still empty; retrying bootstrap", "bootstrap_peers", len(peers), "retry_in", delay.String())
	}
}

// unreachableText is the warning for n bootstrap peers none of which
// answered, err being the first failure.
func (s *Service) unreachableText(n int, err error) string {
	what := fmt.Sprintf("any of the %d bootstrap peers", n)
	if n == 1 {
		what = "the bootstrap peer"
	}
	lan := "LAN peers are still found by mDNS"
	if !s.cfg.mdns {
		lan = "mDNS is off, so no peer will be found until one is reachable"
	}
	return fmt.Sprintf("cannot reach %s (%s); %s; see README 'A private network' to run your own; retrying quietly",
		what, dialReason(err), lan)
}

// dialReason is the gist of a failed dial for a one-line message: the
// cause given for the last address tried ("connection refused", "no route
// to host", "context deadline exceeded").
func dialReason(err error) string {
	if err == nil {
		return "no answer"
	}
	msg := strings.TrimSpace(err.Error())
	if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
		msg = strings.TrimSpace(msg[i+1:])
	}
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		msg = msg[i+2:]
	}
	return msg
}

// connectAll connects to peers in parallel, each attempt bounded by the
// connect timeout, and returns how many succeeded and the first failure.
func (s *Service) connectAll(ctx context.Context, peers []peer.AddrInfo) (int, error) {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex // guards ok and firstErr
		ok       int
		firstErr error
	)
	for _, ai := range peers {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, s.cfg.connectTO)
			defer cancel()
			err := s.h.Connect(cctx, ai)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if ctx.Err() == nil {
					log.Debugw("bootstrap peer unreachable", "peer", ai.ID, "addr", ai.Addrs, "err", err)
					if firstErr == nil {
						firstErr = err
					}
				}
				return
			}
			log.Debugw("connected to bootstrap peer", "peer", ai.ID)
			ok++
		})
	}
	wg.Wait()
	return ok, firstErr
}

// withoutPeer returns peers minus id, one entry per peer (the addresses of
// entries for the same peer are merged).
func withoutPeer(peers []peer.AddrInfo, id peer.ID) []peer.AddrInfo {
	out := make([]peer.AddrInfo, 0, len(peers))
	index := make(map[peer.ID]int, len(peers))
	for _, ai := range peers {
		if ai.ID == id {
			continue
		}
		if i, ok := index[ai.ID]; ok {
			out[i].Addrs = dedupAddrs(append(out[i].Addrs, ai.Addrs...))
			continue
		}
		index[ai.ID] = len(out)
		out = append(out, peer.AddrInfo{ID: ai.ID, Addrs: dedupAddrs(ai.Addrs)})
	}
	return out
}

// sleep waits for d or for ctx to end; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
