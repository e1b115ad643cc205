package discovery

import (
	"context"
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
// checks again, backing off while the table stays empty. Unreachable peers
// are logged; they are never an error. It returns when ctx ends.
func (s *Service) bootstrapLoop(ctx context.Context, d *dht.IpfsDHT, peers []peer.AddrInfo) {
	peers = withoutPeer(peers, s.h.ID())
	if len(peers) == 0 {
		log.Infow("no bootstrap peers: joining the DHT only through peers we meet otherwise")
		return
	}
	delay := bootstrapRetryMin
	for round := 1; ; round++ {
		if d.RoutingTable().Size() > 0 {
			delay = bootstrapRetryMin
			if !sleep(ctx, bootstrapCheck) {
				return
			}
			continue
		}
		if n := s.connectAll(ctx, peers, round == 1); n > 0 {
			// Connected peers join the routing table once identify and a
			// lookup check succeed; Bootstrap also starts a refresh.
			if err := d.Bootstrap(ctx); err != nil {
				log.Debugw("triggering a DHT refresh", "err", err)
			}
		}
		if !sleep(ctx, delay) {
			return
		}
		if size := d.RoutingTable().Size(); size > 0 {
			log.Infow("joined the DHT", "routing_table", size)
			continue
		}
		delay = min(2*delay, bootstrapRetryMax)
		log.Warnw("DHT routing table still empty; retrying bootstrap", "bootstrap_peers", len(peers), "retry_in", delay.String())
	}
}

// connectAll connects to peers in parallel, each attempt bounded by the
// connect timeout, and returns how many succeeded. Failures are warnings on
// the first round and debug messages afterwards.
func (s *Service) connectAll(ctx context.Context, peers []peer.AddrInfo, loud bool) int {
	var (
		wg sync.WaitGroup
		mu sync.Mutex // guards ok
		ok int
	)
	for _, ai := range peers {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, s.cfg.connectTO)
			defer cancel()
			err := s.h.Connect(cctx, ai)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				if loud {
					log.Warnw("bootstrap peer unreachable", "peer", ai.ID, "addr", ai.Addrs, "err", err)
				} else {
					log.Debugw("bootstrap peer unreachable", "peer", ai.ID, "addr", ai.Addrs, "err", err)
				}
				return
			}
			log.Debugw("connected to bootstrap peer", "peer", ai.ID)
			mu.Lock()
			ok++
			mu.Unlock()
		})
	}
	wg.Wait()
	return ok
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
