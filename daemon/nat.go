package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"

	"github.com/p2pd/p2pd/api"
	p2phost "github.com/p2pd/p2pd/host"
	"github.com/p2pd/p2pd/nat"
)

// natState is the daemon's NAT traversal machinery, set up by Start.
type natState struct {
	punches *nat.PunchTracker
	relay   *relay.Relay // nil unless --relay-service
	keeper  *nat.Keeper  // nil without --relay

	mu    sync.Mutex
	reach network.Reachability
}

// natHostOptions are the host options NAT traversal needs.
func (d *Daemon) natHostOptions() []p2phost.Option {
	c := d.cfg.nat
	d.nat.punches = nat.NewPunchTracker(0)
	opts := []p2phost.Option{p2phost.HolePunchTracer(d.nat.punches)}
	if c.reachability != network.ReachabilityUnknown {
		opts = append(opts, p2phost.ForceReachability(c.reachability))
	}
	if c.relayService != nil {
		opts = append(opts, p2phost.NATService(true))
	}
	if len(c.announce) > 0 {
		opts = append(opts, p2phost.AnnounceAddrs(c.announce...))
	}
	return opts
}

// startRelayService makes the node a relay, right after the host starts
// (a client that finds no relay protocol on its first visit waits before
// it asks again).
func (d *Daemon) startRelayService() error {
	c := d.cfg.nat
	d.nat.reach = c.reachability
	if c.relayService != nil {
		r, err := nat.StartRelay(d.host, *c.relayService)
		if err != nil {
			return err
		}
		d.nat.relay = r
		if c.relayService.Unlimited() && len(c.relayService.AllowPeers) == 0 {
			log.Warnw("the relay service is unlimited and open to every peer: anyone can relay any amount of traffic through this node (restrict it with --relay-allow-peer)")
		}
	}
	return nil
}

// startNAT starts the relay reservations and the watchers that turn NAT
// traversal into events, once discovery runs.
func (d *Daemon) startNAT() error {
	c := d.cfg.nat
	d.nat.punches.OnEvent(d.holePunchEvent)
	d.watchReachability()
	if len(c.relays) > 0 {
		k, err := nat.NewKeeper(d.host, c.relays, nat.OnChange(d.reservationChanged))
		if err != nil {
			return err
		}
		d.nat.keeper = k
	}
	return nil
}

// stopNAT stops what startNAT started (before the host closes).
func (d *Daemon) stopNAT() error {
	var errs []error
	if d.nat.keeper != nil {
		errs = append(errs, d.nat.keeper.Close())
	}
	if d.nat.relay != nil {
		errs = append(errs, d.nat.relay.Close())
	}
	return errors.Join(errs...)
}

// reachability is the node's current reachability.
func (d *Daemon) reachability() network.Reachability {
	d.nat.mu.Lock()
	defer d.nat.mu.Unlock()
	return d.nat.reach
}

// watchReachability follows AutoNAT's verdicts (or the pinned one),
// publishes them, and advertises the rendezvous strings again when the
// node's addresses change, since DHT provider records carry the addresses
// of the moment (only circuit addresses count: they are what a peer behind
// a NAT is reached at). The goroutine is owned by d.wg and stops with d.ctx.
func (d *Daemon) watchReachability() {
	sub, err := d.host.EventBus().Subscribe([]any{
		new(event.EvtLocalReachabilityChanged), new(event.EvtLocalAddressesUpdated),
	}, eventbus.Name("p2pd-daemon-nat"))
	if err != nil {
		log.Errorw("subscribing to reachability events; status may be stale", "err", err)
		return
	}
	var circuits []string // the circuit addresses last advertised
	d.consume(sub, func(e any) {
		switch ev := e.(type) {
		case event.EvtLocalReachabilityChanged:
			d.nat.mu.Lock()
			d.nat.reach = ev.Reachability
			d.nat.mu.Unlock()
			log.Infow("reachability", "reachability", reachName(ev.Reachability))
			d.events.Publish(api.Event{Type: api.EventReachabilityChanged, Reachability: reachName(ev.Reachability)})
		case event.EvtLocalAddressesUpdated:
			var now []string
			for _, a := range ev.Current {
				if nat.IsRelayed(a.Address) {
					now = append(now, a.Address.String())
				}
			}
			slices.Sort(now)
			if !slices.Equal(now, circuits) {
				circuits = now
				d.readvertise()
			}
		}
	})
}

// readvertise announces this node again under every joined rendezvous
// string, in the background, bounded by the daemon's life.
func (d *Daemon) readvertise() {
	if d.disc == nil {
		return
	}
	for _, ns := range d.disc.Joined() {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			ctx, cancel := context.WithTimeout(d.ctx, time.Minute)
			defer cancel()
			if _, err := d.disc.Advertise(ctx, ns); err != nil && d.ctx.Err() == nil {
				log.Debugw("advertising the new addresses", "rendezvous", ns, "err", err)
			}
		}()
	}
}

// reachName names r as status and events show it.
func reachName(r network.Reachability) string {
	switch r {
	case network.ReachabilityPublic:
		return "public"
	case network.ReachabilityPrivate:
		return "private"
	}
	return "unknown"
}

func (d *Daemon) reservationChanged(r nat.Reservation) {
	rj := reservationJSON(r)
	d.events.Publish(api.Event{Type: api.EventRelayReservation, Peer: rj.Peer, Relay: &rj})
}

func (d *Daemon) holePunchEvent(e nat.PunchEvent) {
	if e.Kind == "result" || e.Kind == "direct_dial" {
		log.Infow("hole punching", "peer", e.Peer, "step", e.Kind, "attempt", e.Attempt, "success", e.Success,
			"elapsed", e.Elapsed.String(), "err", e.Err)
	}
	hp := api.HolePunch{Kind: e.Kind, Attempt: e.Attempt, Success: e.Success, Error: e.Err,
		ElapsedMS: float64(e.Elapsed) / float64(time.Millisecond)}
	d.events.Publish(api.Event{Type: api.EventHolePunch, Peer: e.Peer.String(), HolePunch: &hp})
}

// reservationJSON is r as the API shows it.
func reservationJSON(r nat.Reservation) api.RelayReservation {
	out := api.RelayReservation{
		Peer:          r.Relay.String(),
		Active:        r.Active,
		Addresses:     []string{},
		LimitDuration: api.Duration(r.LimitDuration),
		LimitData:     r.LimitData,
	}
	if r.Active {
		t := r.Expires
		out.Expires = &t
	}
	for _, a := range r.Addrs {
		out.Addresses = append(out.Addresses, a.String())
	}
	if r.Err != nil {
		out.Error = r.Err.Error()
	}
	return out
}

// holePunchReady reports whether the node serves DCUtR (it does once it
// knows a public address of its own).
func (d *Daemon) holePunchReady() bool {
	return slices.Contains(d.host.Mux().Protocols(), holepunch.Protocol)
}

// relayServiceJSON describes the relay service, or nil without one.
func (d *Daemon) relayServiceJSON() *api.RelayService {
	rc := d.cfg.nat.relayService
	if rc == nil {
		return nil
	}
	out := &api.RelayService{
		MaxReservations: rc.MaxReservations,
		MaxCircuits:     rc.MaxCircuits,
		LimitDuration:   api.Duration(rc.LimitDuration),
		LimitData:       rc.LimitData,
	}
	for _, p := range rc.AllowPeers {
		out.AllowPeers = append(out.AllowPeers, p.String())
	}
	return out
}

// verdict words the status in one line, with the next step when the node
// cannot be reached.
func verdict(st *api.Status, relaysConfigured bool) string {
	var active []string
	var lastErr string
	for _, r := range st.Relays {
		if r.Active {
			active = append(active, r.Peer)
		} else if r.Error != "" && lastErr == "" {
			lastErr = fmt.Sprintf("relay %s: %s", r.Peer, r.Error)
		}
	}
	prefix := ""
	if st.RelayService != nil {
		prefix = "relaying for others; "
	}
	switch {
	case st.Reachability == "public":
		return prefix + "reachable from outside at its public addresses"
	case len(active) > 0:
		punch := "hole punching will upgrade connections to direct ones"
		if !st.HolePunching.Ready {
			punch = "hole punching is not ready yet (no public address of this node observed)"
		}
		return prefix + fmt.Sprintf("reachable through relay %s; %s", active[0], punch)
	case relaysConfigured && lastErr != "":
		return prefix + "not reachable from outside: no relay reservation (" + lastErr + "); check that the relay runs `p2pd daemon --relay-service`"
	case relaysConfigured:
		return prefix + "not reachable from outside yet: reserving a slot on the relay"
	case st.Reachability == "private":
		return prefix + "not reachable from outside and no relay configured: add --relay"
	}
	return prefix + "reachability unknown (no public AutoNAT server has answered); if peers cannot reach this node, add --relay and --reachability private"
}
