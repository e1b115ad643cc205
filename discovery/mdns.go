package discovery

import (
	"context"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
)

// MDNSServiceName is the DNS-SD service p2pd nodes announce and browse on the
// local network. It differs from go-libp2p's default ("_p2p._udp") so p2pd
// nodes find each other and not every libp2p node on the LAN.
const MDNSServiceName = "_p2pd._udp"

// MDNSSource is the source passed to the OnPeerFound callback for peers found
// by mDNS.
const MDNSSource = "mdns"

// mdnsNotifee hands the peers mDNS finds to mdnsLoop. mDNS calls it on a new
// goroutine per hit; it returns as soon as the loop takes the peer or the
// service stops.
type mdnsNotifee struct {
	found chan<- peer.AddrInfo
	done  <-chan struct{}
}

// HandlePeerFound implements mdns.Notifee.
func (n mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) {
	select {
	case n.found <- ai:
	case <-n.done:
	}
}

// startMDNSLocked starts the mDNS service and the loop that connects to what
// it finds. A failure to start is logged: mDNS is optional. s.mu must be
// held.
func (s *Service) startMDNSLocked(ctx context.Context) {
	found := make(chan peer.AddrInfo)
	svc := mdns.NewMdnsService(s.h, MDNSServiceName, mdnsNotifee{found: found, done: ctx.Done()})
	if err := svc.Start(); err != nil {
		log.Warnw("mDNS discovery unavailable", "err", err)
		_ = svc.Close() // stops whatever part did start; it never fails
		return
	}
	s.mdns = svc
	s.goLocked(func() { s.mdnsLoop(ctx, found) })
	log.Infow("mDNS discovery started", "service", MDNSServiceName)
}

// mdnsLoop connects to the peers mDNS finds until ctx ends.
func (s *Service) mdnsLoop(ctx context.Context, found <-chan peer.AddrInfo) {
	c := s.newConnector(MDNSSource)
	defer c.release()
	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, maxConnecting)
	for {
		select {
		case ai := <-found:
			s.mdnsHits.Add(1)
			ai, ok := s.usable(ai)
			if !ok {
				continue
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			wg.Go(func() {
				defer func() { <-sem }()
				c.handle(ctx, ai)
			})
		case <-ctx.Done():
			return
		}
	}
}
