// Package filters turns the daemon's --deny and --allow address ranges into
// one immutable value that go-libp2p consults through its
// connmgr.ConnectionGater interface, and that the DHT can use as an address
// filter (FilterAddrs has the shape of dht.AddressFilter).
//
// # The rule
//
// An address is refused when it lies in a denied range, or, when at least
// one allow range is given, when it lies outside every allowed range. Deny
// wins over allow. With no ranges at all every address is allowed.
//
// # Which address is judged
//
//   - /ip4 and /ip6 addresses are judged by their IP. An IPv4-mapped IPv6
//     address (/ip6/::ffff:10.0.0.1) is the IPv4 address it carries, so it
//     matches 10.0.0.0/8; likewise a mapped range such as ::ffff:10.0.0.0/104
//     is stored as 10.0.0.0/8. IPv4 addresses are only compared with IPv4
//     ranges: ::/0 does not cover 10.0.0.1. An /ip6zone is ignored.
//   - /p2p-circuit addresses are judged by the relay's transport address,
//     the part before /p2p-circuit: that is the address actually dialled.
//     (The relay connection itself is also gated when it is made, and an
//     inbound relayed connection shows the relay's address, so deny ranges
//     apply to relays either way.)
//   - /dns, /dns4, /dns6 and /dnsaddr names cannot be judged before they are
//     resolved. go-libp2p v0.51's swarm resolves them before it calls
//     InterceptAddrDial (swarm_dial.go: addrsForDial runs resolveAddrs and
//     then filterKnownUndialables, which asks the gater about each resolved
//     address), so for TCP and QUIC the gater only ever sees IPs. The
//     relay transport skips resolution (it is a SkipResolver) and the relay
//     is resolved and gated when it is dialled. A name that still reaches
//     the filters is treated like an address without an IP, below.
//   - Addresses without an IP (a name, /unix, /p2p/<relay>/p2p-circuit
//     without the relay's address, /memory) lie in no range: they pass deny
//     ranges, and they are refused as soon as an allow list exists, so a
//     name can never be a way around an allow list. The cost is that names
//     in DHT records, and circuit addresses whose relay is given by name, are
//     dropped under an allow list.
//
// # Hooks
//
//   - InterceptPeerDial always allows: there are no per-peer rules here.
//   - InterceptAddrDial judges the address about to be dialled. A refusal
//     surfaces on the dialing side as swarm.ErrGaterDisallowedConnection
//     ("gater disallows connection to peer") inside the *swarm.DialError.
//   - InterceptAccept judges the remote address of an inbound connection
//     before any handshake. The dialing side then only sees its handshake
//     fail (typically a reset connection); it is not told why.
//   - InterceptSecured and InterceptUpgraded judge the connection's remote
//     address again, in both directions. They are the backstop for any
//     transport that dials a name by itself, since a connected socket always
//     has a real remote IP.
//
// Refusals are logged at debug level with the addr (and peer when known).
//
// This package does not block peers by ID, does not persist rules, does not
// close connections that already exist, and cannot change its ranges after
// New: build a new Filters (and a new host) to change them.
package filters

import (
	"fmt"
	"net/netip"
	"slices"

	logging "github.com/ipfs/go-log/v2"
	ma "github.com/multiformats/go-multiaddr"
)

var log = logging.Logger("p2pd/filters")

// Filters is an immutable set of denied and allowed address ranges. It is
// safe for concurrent use. A nil *Filters allows everything.
type Filters struct {
	deny  []netip.Prefix // normalized, deduplicated; never changed after New
	allow []netip.Prefix // normalized, deduplicated; never changed after New
}

// config collects the options of New.
type config struct {
	deny  []netip.Prefix
	allow []netip.Prefix
}

// Option configures New.
type Option func(*config) error

// Deny adds ranges whose addresses are refused. It may be given several
// times; the ranges add up. A zero netip.Prefix is an error.
func Deny(prefixes ...netip.Prefix) Option {
	return func(c *config) error {
		for _, p := range prefixes {
			if !p.IsValid() {
				return fmt.Errorf("deny range: %w: the zero prefix is not a range", ErrInvalidPrefix)
			}
			c.deny = append(c.deny, normalize(p))
		}
		return nil
	}
}

// Allow adds ranges outside which addresses are refused. It may be given
// several times; the ranges add up. Once any allow range is given, only
// addresses inside some allowed range (and in no denied range) pass. A zero
// netip.Prefix is an error.
func Allow(prefixes ...netip.Prefix) Option {
	return func(c *config) error {
		for _, p := range prefixes {
			if !p.IsValid() {
				return fmt.Errorf("allow range: %w: the zero prefix is not a range", ErrInvalidPrefix)
			}
			c.allow = append(c.allow, normalize(p))
		}
		return nil
	}
}

// New builds the filters from the options. With no options the result is
// empty and allows every address.
func New(opts ...Option) (*Filters, error) {
	var c config
	for _, opt := range opts {
		if err := opt(&c); err != nil {
			return nil, err
		}
	}
	return &Filters{deny: dedupe(c.deny), allow: dedupe(c.allow)}, nil
}

func dedupe(ps []netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(ps))
	for _, p := range ps {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// Empty reports whether there are no ranges at all, in which case every
// address is allowed.
func (f *Filters) Empty() bool {
	return f == nil || (len(f.deny) == 0 && len(f.allow) == 0)
}

// Rules returns copies of the denied and the allowed ranges, in the
// normalized form they are compared in (masked, mapped IPv4 unmapped).
func (f *Filters) Rules() (deny, allow []netip.Prefix) {
	if f == nil {
		return nil, nil
	}
	return slices.Clone(f.deny), slices.Clone(f.allow)
}

// String describes the ranges, for logs and status output.
func (f *Filters) String() string {
	if f.Empty() {
		return "no address filters"
	}
	return fmt.Sprintf("deny %v allow %v", f.deny, f.allow)
}

// AddrAllowed reports whether a may be dialled or accepted. See the package
// documentation for which part of an address is judged.
func (f *Filters) AddrAllowed(a ma.Multiaddr) bool {
	return f.refusal(a) == ""
}

// FilterAddrs returns the addresses of addrs that AddrAllowed accepts, in
// order. It never modifies addrs: the result is a new slice, non-nil
// whenever addrs is non-nil (empty when everything is refused). Its shape
// fits dht.AddressFilter.
func (f *Filters) FilterAddrs(addrs []ma.Multiaddr) []ma.Multiaddr {
	if addrs == nil {
		return nil
	}
	out := make([]ma.Multiaddr, 0, len(addrs))
	for _, a := range addrs {
		if why := f.refusal(a); why != "" {
			log.Debugw("address filtered out", "addr", a, "reason", why)
			continue
		}
		out = append(out, a)
	}
	return out
}

// refusal returns why a is refused, or "" when it is allowed.
func (f *Filters) refusal(a ma.Multiaddr) string {
	if f.Empty() {
		return ""
	}
	ip, ok := judgedIP(a)
	if !ok {
		if len(f.allow) > 0 {
			return "no IP address to check against the allow list"
		}
		return ""
	}
	for _, p := range f.deny {
		if p.Contains(ip) {
			return "inside denied range " + p.String()
		}
	}
	if len(f.allow) == 0 {
		return ""
	}
	for _, p := range f.allow {
		if p.Contains(ip) {
			return ""
		}
	}
	return "outside every allowed range"
}

// judgedIP returns the IP that decides about a: its leading /ip4 or /ip6
// (after an optional /ip6zone). For a circuit address that is the relay's
// IP, since the relay's transport address comes before /p2p-circuit.
// IPv4-mapped IPv6 addresses are unmapped. ok is false when a does not start
// with an IP: a DNS name, /unix, a bare /p2p (such as a circuit address
// without the relay's address), an empty address.
func judgedIP(a ma.Multiaddr) (ip netip.Addr, ok bool) {
	for _, c := range a {
		switch c.Code() {
		case ma.P_IP6ZONE:
			// The zone qualifies the /ip6 that follows it.
			continue
		case ma.P_IP4, ma.P_IP6:
			ip, ok := netip.AddrFromSlice(c.RawValue())
			if !ok {
				return netip.Addr{}, false
			}
			return ip.Unmap(), true
		}
		return netip.Addr{}, false
	}
	return netip.Addr{}, false
}
