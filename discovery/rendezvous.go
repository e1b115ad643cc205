package discovery

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Rendezvous timings.
const (
	advertiseRetryMin = time.Second // after a failed advertise
	advertiseRetryMax = time.Minute
	advertiseAgainMax = 3 * time.Hour // the longest TTL RoutingDiscovery returns
	// maxConnecting bounds the connection attempts one loop runs at once.
	maxConnecting = 8
)

// Join starts a rendezvous loop for ns, unless one runs already (Join is
// idempotent). The loop waits for a non-empty routing table, then advertises
// this node under ns (retrying soon after a failure, re-announcing before the
// record expires) and looks for other peers under ns over and over: right
// after the first announcement, then at growing intervals (FindInterval). It
// connects to each new peer found, backing off per peer after failures, and
// calls the OnPeerFound callback. Joining before Start is allowed: the loop
// starts with the service. It fails with ErrDHTOff when the DHT is off and
// with ErrClosed after Close.
func (s *Service) Join(ns string) error {
	if ns == "" {
		return fmt.Errorf("joining: %w", errEmptyNS)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return fmt.Errorf("joining %q: %w", ns, ErrClosed)
	case s.cfg.mode == ModeOff:
		return fmt.Errorf("joining %q: %w", ns, ErrDHTOff)
	}
	if _, ok := s.joins[ns]; ok {
		return nil
	}
	j := &join{}
	s.joins[ns] = j
	if s.started {
		s.startJoinLocked(ns, j)
	}
	return nil
}

// startJoinLocked launches the loop of j. s.mu must be held and the service
// started.
func (s *Service) startJoinLocked(ns string, j *join) {
	ctx, cancel := context.WithCancel(s.life)
	j.cancel, j.done = cancel, make(chan struct{})
	s.goLocked(func() {
		defer close(j.done)
		s.rendezvous(ctx, ns)
	})
}

// Leave stops the rendezvous loop for ns and waits for it to end. Records
// already stored in the DHT stay there until they expire. Leaving a string
// not joined does nothing. It must not be called from the OnPeerFound
// callback.
func (s *Service) Leave(ns string) {
	s.mu.Lock()
	j, ok := s.joins[ns]
	delete(s.joins, ns)
	s.mu.Unlock()
	if !ok || j.cancel == nil {
		return
	}
	j.cancel()
	<-j.done
	log.Infow("left rendezvous", "source", ns)
}

// rendezvous is the loop of one joined string; it returns when ctx ends.
func (s *Service) rendezvous(ctx context.Context, ns string) {
	// No waiting for DHT peers: with none, Advertise still stores the
	// record where peers asking this node find it, and FindPeers serves
	// the records peers stored here (a DHT server whose peers are all DHT
	// clients has an empty routing table for good).
	log.Infow("joining rendezvous", "source", ns)
	advertised := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { s.advertiseLoop(ctx, ns, advertised) })
	wg.Go(func() { s.findLoop(ctx, ns, advertised) })
	wg.Wait()
}

// advertiseLoop announces this node under ns until ctx ends. advertised is
// closed after the first attempt, successful or not. advertiseTimer decides
// the waits.
func (s *Service) advertiseLoop(ctx context.Context, ns string, advertised chan<- struct{}) {
	timer := advertiseTimer{retry: advertiseRetryMin, again: s.cfg.advertiseMinI}
	for first := true; ; first = false {
		ttl, err := s.Advertise(ctx, ns)
		if first {
			close(advertised)
		}
		if ctx.Err() != nil {
			return
		}
		wait := timer.next(ttl, err)
		switch {
		case errors.Is(err, ErrNoPeers):
			log.Infow("advertised in this node's own records only: no DHT peers yet; retrying", "source", ns, "retry_in", wait.String())
		case err != nil:
			log.Warnw("advertising failed; retrying", "source", ns, "retry_in", wait.String(), "err", err)
		default:
			log.Debugw("advertised", "source", ns, "ttl", ttl.String(), "next", wait.String())
		}
		if !sleep(ctx, wait) {
			return
		}
	}
}

// advertiseTimer computes the waits between announcements. After a success
// it waits again, which starts at the configured minimum and doubles, but
// never more than 7/8 of the record's TTL, so early announcements reach
// peers that joined since and later ones renew the record before it
// expires. After a failure it waits retry, from one second doubling up to a
// minute; a success resets retry.
type advertiseTimer struct {
	retry, again time.Duration
}

func (a *advertiseTimer) next(ttl time.Duration, err error) time.Duration {
	if err != nil {
		wait := a.retry
		a.retry = min(2*a.retry, advertiseRetryMax)
		return wait
	}
	a.retry = advertiseRetryMin
	wait := a.again
	if renew := ttl * 7 / 8; renew > 0 && renew < wait {
		wait = renew
	}
	a.again = min(2*a.again, advertiseAgainMax)
	return wait
}

// findLoop looks for peers under ns until ctx ends, first once advertised is
// closed, then at intervals growing from findMin to findMax, and connects to
// what it finds.
func (s *Service) findLoop(ctx context.Context, ns string, advertised <-chan struct{}) {
	select {
	case <-advertised:
	case <-ctx.Done():
		return
	}
	c := s.newConnector(ns)
	defer c.release()
	interval := s.cfg.findMin
	for {
		s.findRound(ctx, ns, c)
		if !sleep(ctx, interval) {
			return
		}
		interval = min(2*interval, s.cfg.findMax)
	}
}

// findRound runs one query and hands each peer found to c, running up to
// maxConnecting attempts at once; it returns when the query and all the
// attempts it started have ended.
func (s *Service) findRound(ctx context.Context, ns string, c *connector) {
	ch, err := s.FindPeers(ctx, ns)
	if err != nil {
		if ctx.Err() == nil {
			log.Warnw("looking for peers failed", "source", ns, "err", err)
		}
		return
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxConnecting)
	n := 0
	for ai := range ch {
		n++
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c.handle(ctx, ai)
		})
	}
	wg.Wait()
	c.prune()
	log.Debugw("rendezvous round done", "source", ns, "found", n)
}
