package listeners

import (
	"context"
	"errors"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// DefaultDialTimeout bounds, per connection or stream, the whole dial: the
// peer lookup, the libp2p connection and protocol negotiation for a forward,
// and the TCP dial of the local target for a listen.
const DefaultDialTimeout = 30 * time.Second

// PeerFinder looks up the addresses of a peer, typically through the DHT.
// The Registry uses it for a forward whose target has no known address.
// *dht.IpfsDHT satisfies it.
type PeerFinder interface {
	FindPeer(ctx context.Context, id peer.ID) (peer.AddrInfo, error)
}

// Option configures a Registry. Options check their own arguments; New
// reports the first invalid one.
type Option func(*config) error

type config struct {
	finder      PeerFinder
	rendezvous  RendezvousFinder
	dialTimeout time.Duration
	onChange    func()
	onAdd       func(Info)
	onRemove    func(Info)
	direct      DirectPaths // nil: forwards wait their whole dial timeout
	// udpIdleTimeout is the flows' idle timeout; 0 means udpflow's default.
	udpIdleTimeout time.Duration
	oneFrame       bool // open forwards' streams with package oneframe
}

func defaultConfig() config {
	return config{dialTimeout: DefaultDialTimeout, oneFrame: true}
}

// WithOneFrameProposal says whether a forward opens its streams to a peer
// known to serve the protocol with package oneframe, which sends the
// protocol proposal in the same frame as the connection's first data (on,
// the default), or always through the host's NewStream.
func WithOneFrameProposal(on bool) Option {
	return func(c *config) error {
		c.oneFrame = on
		return nil
	}
}

// WithPeerFinder sets where forwards look up a target peer that has no known
// address. Without it such a dial fails with ErrNoAddresses.
func WithPeerFinder(f PeerFinder) Option {
	return func(c *config) error {
		if f == nil {
			return errors.New("peer finder is nil")
		}
		c.finder = f
		return nil
	}
}

// WithRendezvousFinder sets where forwards to a rendezvous name (@NAME)
// look up the peers advertising it. Without it such forwards are refused.
func WithRendezvousFinder(f RendezvousFinder) Option {
	return func(c *config) error {
		if f == nil {
			return errors.New("rendezvous finder is nil")
		}
		c.rendezvous = f
		return nil
	}
}

// WithDialTimeout sets how long one dial may take (DefaultDialTimeout
// otherwise). It must be positive.
func WithDialTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return errors.New("dial timeout must be positive")
		}
		c.dialTimeout = d
		return nil
	}
}

// WithOnChange sets a function called after every successful Forward,
// Listen, Close and Remove that changed the set of entries (the daemon
// persists tunnels.json from it). It is called synchronously, after the
// WithOnAdd/WithOnRemove hooks. Hooks are called one at a time, in the order
// of the changes, without the registry's data lock held: they may call List,
// but must not call Forward, Listen, Close, Remove or Shutdown, which would
// deadlock. Shutdown does not call it: entries that are shut down are meant
// to come back when the daemon restarts.
func WithOnChange(f func()) Option {
	return func(c *config) error {
		if f == nil {
			return errors.New("change hook is nil")
		}
		c.onChange = f
		return nil
	}
}

// WithOnAdd sets a function called with a copy of every entry that Forward or
// Listen added. Same calling rules as WithOnChange.
func WithOnAdd(f func(Info)) Option {
	return func(c *config) error {
		if f == nil {
			return errors.New("add hook is nil")
		}
		c.onAdd = f
		return nil
	}
}

// WithOnRemove sets a function called with a copy of every entry that Close or
// Remove removed, and by Shutdown with every entry it stopped. Same calling
// rules as WithOnChange.
func WithOnRemove(f func(Info)) Option {
	return func(c *config) error {
		if f == nil {
			return errors.New("remove hook is nil")
		}
		c.onRemove = f
		return nil
	}
}
