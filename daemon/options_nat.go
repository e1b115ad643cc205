package daemon

import (
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/p2pd/p2pd/nat"
)

// natConfig holds the daemon's NAT traversal settings.
type natConfig struct {
	relays       []peer.AddrInfo
	reachability network.Reachability
	relayService *nat.RelayConfig // nil: not a relay
	announce     []ma.Multiaddr
}

// Reachability values of the --reachability flag and `p2pd status`.
const (
	ReachabilityAuto    = "auto"
	ReachabilityPublic  = "public"
	ReachabilityPrivate = "private"
)

// ParseReachability turns auto, public or private into what the host
// takes (auto is network.ReachabilityUnknown: AutoNAT decides).
func ParseReachability(s string) (network.Reachability, error) {
	switch s {
	case ReachabilityAuto, "":
		return network.ReachabilityUnknown, nil
	case ReachabilityPublic:
		return network.ReachabilityPublic, nil
	case ReachabilityPrivate:
		return network.ReachabilityPrivate, nil
	}
	return 0, errors.New("want auto, public or private")
}

// Relays sets the relays the node keeps a reservation on, one AddrInfo per
// relay peer (nat.MergeRelays merges multiaddrs given one by one). A relay
// that cannot be reached is retried; it never fails the start.
func Relays(relays ...peer.AddrInfo) Option {
	return func(c *config) error {
		for _, ai := range relays {
			if ai.ID == "" {
				return errors.New("relay without a peer ID")
			}
		}
		c.nat.relays = relays
		return nil
	}
}

// Reachability pins the node's reachability (network.ReachabilityPublic or
// network.ReachabilityPrivate) instead of letting AutoNAT find it out.
// Private makes the node announce its relays' circuit addresses at once.
func Reachability(r network.Reachability) Option {
	return func(c *config) error {
		switch r {
		case network.ReachabilityUnknown, network.ReachabilityPublic, network.ReachabilityPrivate:
			c.nat.reachability = r
			return nil
		}
		return fmt.Errorf("unknown reachability %d", r)
	}
}

// RelayService makes the node a relay for others, as rc allows, and runs
// the AutoNAT service so that NATed peers learn that they are.
func RelayService(rc nat.RelayConfig) Option {
	return func(c *config) error {
		if err := rc.Validate(); err != nil {
			return err
		}
		c.nat.relayService = &rc
		return nil
	}
}

// Announce adds public addresses the node announces besides its own, for
// an address not on any interface (a VPS behind a 1:1 NAT).
func Announce(addrs ...ma.Multiaddr) Option {
	return func(c *config) error {
		c.nat.announce = append(c.nat.announce, addrs...)
		return nil
	}
}
