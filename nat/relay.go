package nat

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"
)

// Defaults of the relay service: those of go-libp2p's relay v2, which keep
// a public relay cheap to run. A relayed connection carries at most
// DefaultRelayLimitData bytes each way and lives at most
// DefaultRelayLimitDuration; then the relay closes it, with every stream on
// it. That is enough to reach a peer and upgrade to a direct connection by
// hole punching, not to carry a tunnel.
const (
	DefaultRelayMaxReservations = 128
	DefaultRelayMaxCircuits     = 16
	DefaultRelayLimitDuration   = 2 * time.Minute
	DefaultRelayLimitData       = 1 << 17 // 128 KiB
	// relayBufferLimited is the copy buffer per relayed stream and
	// direction under a data limit (go-libp2p's default).
	relayBufferLimited = 2048
	// relayBufferUnlimited is the buffer when data is unlimited: 64 KiB
	// buffers carried 1.5x the throughput of 2 KiB ones in the lab
	// (NAT-NOTES §3.2).
	relayBufferUnlimited = 64 << 10
)

// RelayConfig is what a relay service allows. The zero value is not
// useful; start from DefaultRelayConfig.
type RelayConfig struct {
	// MaxReservations is how many peers may hold a slot at once.
	MaxReservations int
	// MaxCircuits is how many relayed connections each peer may have open.
	MaxCircuits int
	// LimitDuration is how long a relayed connection may live; 0 is no
	// limit.
	LimitDuration time.Duration
	// LimitData is how many bytes a relayed connection may carry in each
	// direction; 0 is no limit. With both limits 0 relayed connections are
	// unlimited, and peers use them like direct ones.
	LimitData int64
	// AllowPeers, when not empty, are the only peers that may reserve a
	// slot or open a relayed connection.
	AllowPeers []peer.ID
}

// DefaultRelayConfig is go-libp2p's relay defaults, open to every peer.
func DefaultRelayConfig() RelayConfig {
	return RelayConfig{
		MaxReservations: DefaultRelayMaxReservations,
		MaxCircuits:     DefaultRelayMaxCircuits,
		LimitDuration:   DefaultRelayLimitDuration,
		LimitData:       DefaultRelayLimitData,
	}
}

// Validate reports the first value that makes no sense.
func (c RelayConfig) Validate() error {
	switch {
	case c.MaxReservations < 1:
		return fmt.Errorf("relay max reservations %d: want at least 1", c.MaxReservations)
	case c.MaxCircuits < 1:
		return fmt.Errorf("relay max circuits %d: want at least 1", c.MaxCircuits)
	case c.LimitDuration < 0:
		return fmt.Errorf("relay limit duration %s is negative (0 is no limit)", c.LimitDuration)
	case c.LimitData < 0:
		return fmt.Errorf("relay limit data %d is negative (0 is no limit)", c.LimitData)
	}
	return nil
}

// Unlimited reports whether relayed connections have no limit at all.
func (c RelayConfig) Unlimited() bool { return c.LimitDuration == 0 && c.LimitData == 0 }

// resources turns c into go-libp2p's relay resources.
func (c RelayConfig) resources() relay.Resources {
	rc := relay.DefaultResources()
	rc.MaxReservations = c.MaxReservations
	rc.MaxCircuits = c.MaxCircuits
	rc.BufferSize = relayBufferLimited
	switch {
	case c.Unlimited():
		rc.Limit = nil
		rc.BufferSize = relayBufferUnlimited
	default:
		// go-libp2p knows only both limits or none: the one left at 0
		// becomes as large as the protocol carries.
		rc.Limit = &relay.RelayLimit{Duration: c.LimitDuration, Data: c.LimitData}
		if c.LimitDuration == 0 {
			rc.Limit.Duration = math.MaxUint32 * time.Second
		}
		if c.LimitData == 0 {
			rc.Limit.Data = math.MaxInt64
			rc.BufferSize = relayBufferUnlimited
		}
	}
	return rc
}

// StartRelay makes h a circuit relay v2 for other peers, as c allows,
// serving at once (it does not wait for AutoNAT to find h public). The
// caller closes the returned relay before h. For other peers to get
// circuit addresses through it, h must announce a public address (see
// host.AnnounceAddrs for an address not on an interface).
func StartRelay(h host.Host, c RelayConfig) (*relay.Relay, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	// WithResources replaces the limit too, so nothing may follow it
	// that sets one.
	opts := []relay.Option{relay.WithResources(c.resources())}
	if len(c.AllowPeers) > 0 {
		opts = append(opts, relay.WithACL(newAllowList(c.AllowPeers)))
	}
	r, err := relay.New(h, opts...)
	if err != nil {
		return nil, fmt.Errorf("starting the relay service: %w", err)
	}
	return r, nil
}

// allowList is a relay ACL that serves only its peers.
type allowList map[peer.ID]bool

func newAllowList(ids []peer.ID) allowList {
	l := make(allowList, len(ids))
	for _, id := range ids {
		l[id] = true
	}
	return l
}

// AllowReserve implements relay.ACLFilter.
func (l allowList) AllowReserve(p peer.ID, _ ma.Multiaddr) bool { return l[p] }

// AllowConnect implements relay.ACLFilter: the destination holds a
// reservation, so it is on the list already; the source must be too.
func (l allowList) AllowConnect(src peer.ID, _ ma.Multiaddr, dest peer.ID) bool {
	return l[src] && l[dest]
}

// ErrNoRelays is returned by NewKeeper without relays.
var ErrNoRelays = errors.New("no relay given")
