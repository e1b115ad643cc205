package nat

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	logging "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	client "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	pbv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/pb"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

var log = logging.Logger("p2pd/nat")

// Timings of the Keeper.
const (
	// reserveTimeout bounds one attempt: connecting to the relay and
	// asking for the reservation.
	reserveTimeout = 20 * time.Second
	// retryMin and retryMax bound the wait after a failed attempt, which
	// doubles from one to the other.
	retryMin = 2 * time.Second
	retryMax = time.Minute
	// renewBefore is how long before its expiry a reservation is renewed
	// (go-libp2p's relays grant an hour).
	renewBefore = 2 * time.Minute
	// protectTag marks relay connections the connection manager must keep.
	protectTag = "p2pd-relay"
)

// Reservation is the state of one configured relay.
type Reservation struct {
	// Relay is the relay's peer ID.
	Relay peer.ID
	// Active is true while the relay holds a slot for this host.
	Active bool
	// Expires is when the slot ends unless renewed (zero when not Active).
	Expires time.Time
	// Addrs are the circuit addresses others reach this host at through
	// the relay (empty when not Active).
	Addrs []ma.Multiaddr
	// LimitDuration and LimitData are the relay's limits per relayed
	// connection (0: none).
	LimitDuration time.Duration
	LimitData     uint64
	// Err is why the last attempt failed, when it did.
	Err error
}

// Keeper keeps a reservation on each of its relays. Its goroutines are
// stopped by Close.
type Keeper struct {
	h       host.Host
	relays  []peer.AddrInfo
	notify  func(Reservation)
	emitter event.Emitter

	mu     sync.Mutex
	state  map[peer.ID]*Reservation
	lost   map[peer.ID]chan struct{} // wakes a relay's loop when its connection ends
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// KeeperOption configures NewKeeper.
type KeeperOption func(*Keeper)

// OnChange has f called (from the Keeper's goroutines, which it must not
// block) whenever a reservation is made, renewed, lost or fails.
func OnChange(f func(Reservation)) KeeperOption {
	return func(k *Keeper) { k.notify = f }
}

// NewKeeper starts keeping a reservation on each relay, one AddrInfo per
// relay peer (MergeRelays merges addresses given one by one). An
// unreachable relay is logged and retried, never an error.
func NewKeeper(h host.Host, relays []peer.AddrInfo, opts ...KeeperOption) (*Keeper, error) {
	if len(relays) == 0 {
		return nil, ErrNoRelays
	}
	k := &Keeper{
		h:      h,
		relays: relays,
		notify: func(Reservation) {},
		state:  map[peer.ID]*Reservation{},
		lost:   map[peer.ID]chan struct{}{},
	}
	for _, o := range opts {
		o(k)
	}
	em, err := h.EventBus().Emitter(new(event.EvtAutoRelayAddrsUpdated), eventbus.Stateful)
	if err != nil {
		return nil, fmt.Errorf("relay addresses: %w", err)
	}
	k.emitter = em
	sub, err := h.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged), eventbus.Name("p2pd-nat-keeper"))
	if err != nil {
		em.Close()
		return nil, fmt.Errorf("relay connections: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	k.cancel = cancel
	for _, ai := range relays {
		k.state[ai.ID] = &Reservation{Relay: ai.ID}
		k.lost[ai.ID] = make(chan struct{}, 1)
		// Keep the relay's given addresses for as long as the node runs.
		h.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.PermanentAddrTTL)
	}
	k.wg.Add(1)
	go k.watch(ctx, sub)
	for _, ai := range relays {
		k.wg.Add(1)
		go k.keep(ctx, ai)
	}
	return k, nil
}

// MergeRelays turns relay multiaddrs (each ending in /p2p/ID) into one
// AddrInfo per relay peer, in the order the relays were first given (status
// lists them so). Two AddrInfos for one relay would make it count twice.
func MergeRelays(addrs []ma.Multiaddr) ([]peer.AddrInfo, error) {
	var out []peer.AddrInfo
	index := make(map[peer.ID]int)
	for _, a := range addrs {
		ai, err := peer.AddrInfoFromP2pAddr(a)
		if err != nil {
			return nil, err
		}
		i, ok := index[ai.ID]
		if !ok {
			index[ai.ID] = len(out)
			out = append(out, *ai)
			continue
		}
		out[i].Addrs = append(out[i].Addrs, ai.Addrs...)
	}
	return out, nil
}

// Close stops keeping reservations and waits for the goroutines. The
// reservations themselves run out on the relays.
func (k *Keeper) Close() error {
	k.cancel()
	k.wg.Wait()
	for _, ai := range k.relays {
		k.h.ConnManager().Unprotect(ai.ID, protectTag)
	}
	return k.emitter.Close()
}

// Reservations returns the state of every relay, in the order given.
func (k *Keeper) Reservations() []Reservation {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]Reservation, 0, len(k.relays))
	for _, ai := range k.relays {
		r := *k.state[ai.ID]
		r.Addrs = slices.Clone(r.Addrs)
		out = append(out, r)
	}
	return out
}

// watch wakes a relay's loop when this host's last connection to the relay
// ends (the relay restarted, or the link broke): the reservation went with it.
func (k *Keeper) watch(ctx context.Context, sub event.Subscription) {
	defer k.wg.Done()
	defer sub.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-sub.Out():
			if !ok {
				return
			}
			ev := e.(event.EvtPeerConnectednessChanged)
			if ev.Connectedness != network.NotConnected {
				continue
			}
			if ch, ok := k.lost[ev.Peer]; ok {
				select {
				case ch <- struct{}{}:
				default:
				}
			}
		}
	}
}

// keep is the loop of one relay: reserve, wait for the renewal time or the
// loss of the connection, reserve again; after a failure wait, doubling.
func (k *Keeper) keep(ctx context.Context, ai peer.AddrInfo) {
	defer k.wg.Done()
	retry := retryMin
	failing := false
	for {
		rsvp, err := k.reserve(ctx, ai)
		if ctx.Err() != nil {
			return
		}
		var wait time.Duration
		if err != nil {
			// The first failure of a run is a warning; repeats are
			// only in status and the debug log.
			if !failing {
				log.Warnw("relay reservation failed; retrying", "relay", ai.ID, "retry_in", retry.String(), "err", err)
			} else {
				log.Debugw("relay reservation failed; retrying", "relay", ai.ID, "retry_in", retry.String(), "err", err)
			}
			failing = true
			k.update(ai.ID, nil, err)
			wait, retry = retry, min(2*retry, retryMax)
		} else {
			if failing || !k.active(ai.ID) {
				log.Infow("relay reservation made", "relay", ai.ID, "expires", rsvp.Expiration.Format(time.RFC3339))
			}
			failing, retry = false, retryMin
			k.update(ai.ID, rsvp, nil)
			wait = max(time.Until(rsvp.Expiration)-renewBefore, retryMin)
			// A loss seen while reserving is stale if the relay is
			// connected now.
			if k.h.Network().Connectedness(ai.ID) == network.Connected {
				select {
				case <-k.lost[ai.ID]:
				default:
				}
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-k.lost[ai.ID]:
			t.Stop()
			if k.active(ai.ID) {
				log.Warnw("relay connection lost; reserving again", "relay", ai.ID)
				k.update(ai.ID, nil, errors.New("connection to the relay closed"))
			}
		}
	}
}

// reserve connects to the relay and asks it for a slot.
func (k *Keeper) reserve(ctx context.Context, ai peer.AddrInfo) (*client.Reservation, error) {
	ctx, cancel := context.WithTimeout(ctx, reserveTimeout)
	defer cancel()
	// The Keeper paces its own retries; the swarm's dial backoff would
	// turn them into "dial backoff" errors without a dial.
	if sw, ok := k.h.Network().(interface{ Backoff() *swarm.DialBackoff }); ok {
		sw.Backoff().Clear(ai.ID)
	}
	if err := k.h.Connect(ctx, ai); err != nil {
		return nil, fmt.Errorf("connecting to the relay: %w", err)
	}
	rsvp, err := client.Reserve(ctx, k.h, peer.AddrInfo{ID: ai.ID})
	if err == nil {
		return rsvp, nil
	}
	var re client.ReservationError
	switch {
	case !errors.As(err, &re) || re.Status == pbv2.Status_CONNECTION_FAILED:
		return nil, fmt.Errorf("asking for a reservation (does the peer run --relay-service?): %w", err)
	case re.Status == pbv2.Status_PERMISSION_DENIED:
		return nil, fmt.Errorf("the relay refused a reservation: this peer is not allowed (see its --relay-allow-peer)")
	case re.Status == pbv2.Status_RESERVATION_REFUSED, re.Status == pbv2.Status_RESOURCE_LIMIT_EXCEEDED:
		return nil, fmt.Errorf("the relay refused a reservation: it is full (%s; see its --relay-max-reservations)", re.Status)
	}
	return nil, fmt.Errorf("the relay refused a reservation: %w", err)
}

func (k *Keeper) active(id peer.ID) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.state[id].Active
}

// update records the outcome of an attempt (rsvp nil: no reservation now),
// announces the new set of circuit addresses and reports the change.
func (k *Keeper) update(id peer.ID, rsvp *client.Reservation, err error) {
	if err != nil { // go-libp2p lists failed dials one per line
		err = errors.New(strings.Join(strings.Fields(err.Error()), " "))
	}
	r := Reservation{Relay: id, Err: err}
	if rsvp != nil {
		r.Active = true
		r.Expires = rsvp.Expiration
		r.Addrs = k.circuitAddrs(id)
		r.LimitDuration, r.LimitData = rsvp.LimitDuration, rsvp.LimitData
		k.h.ConnManager().Protect(id, protectTag)
	} else {
		k.h.ConnManager().Unprotect(id, protectTag)
	}
	k.mu.Lock()
	*k.state[id] = r
	var all []ma.Multiaddr
	for _, s := range k.state {
		all = append(all, s.Addrs...)
	}
	k.mu.Unlock()
	slices.SortFunc(all, func(a, b ma.Multiaddr) int { return bytes.Compare(a.Bytes(), b.Bytes()) })
	if err := k.emitter.Emit(event.EvtAutoRelayAddrsUpdated{RelayAddrs: all}); err != nil {
		log.Debugw("announcing relay addresses", "err", err)
	}
	r.Addrs = slices.Clone(r.Addrs)
	k.notify(r)
}

// circuitAddrs are the addresses at which peers reach this host through
// relay id: the relay's public addresses, or, when it has none (a relay on
// a LAN), its private ones, or else its loopback ones, each followed by /p2p/ID/p2p-circuit.
func (k *Keeper) circuitAddrs(id peer.ID) []ma.Multiaddr {
	var public, private, loopback []ma.Multiaddr
	for _, a := range k.h.Peerstore().Addrs(id) {
		switch {
		case isCircuit(a):
		case manet.IsPublicAddr(a):
			public = append(public, a)
		case manet.IsIPLoopback(a):
			loopback = append(loopback, a)
		default:
			private = append(private, a)
		}
	}
	if len(public) == 0 {
		public = private
	}
	if len(public) == 0 {
		public = loopback
	}
	suffix := ma.StringCast("/p2p/" + id.String() + "/p2p-circuit")
	out := make([]ma.Multiaddr, 0, len(public))
	for _, a := range ma.Unique(public) {
		out = append(out, a.Encapsulate(suffix))
	}
	slices.SortFunc(out, func(a, b ma.Multiaddr) int { return bytes.Compare(a.Bytes(), b.Bytes()) })
	return out
}

// isCircuit reports whether a goes through a relay.
func isCircuit(a ma.Multiaddr) bool {
	for _, c := range a {
		if c.Code() == ma.P_CIRCUIT {
			return true
		}
	}
	return false
}

// IsRelayed reports whether a connection with remote address a goes
// through a relay.
func IsRelayed(a ma.Multiaddr) bool { return isCircuit(a) }
