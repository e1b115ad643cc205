package main

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/p2pd/p2pd/addr"
	"github.com/p2pd/p2pd/filters"
)

// The parsers below check one command-line value each and word their errors
// with the argument's name and the value, so the user knows what to fix.

func parseMultiaddr(name, s string) (ma.Multiaddr, error) {
	m, err := ma.NewMultiaddr(s)
	if err != nil {
		return nil, usagef("invalid %s value %q: not a multiaddr (%v)", name, s, err)
	}
	return m, nil
}

func parseP2PAddr(name, s string) (*peer.AddrInfo, error) {
	m, err := parseMultiaddr(name, s)
	if err != nil {
		return nil, err
	}
	ai, err := peer.AddrInfoFromP2pAddr(m)
	if err != nil {
		return nil, usagef("invalid %s value %q: want a multiaddr ending in /p2p/<peer id> (%v)", name, s, err)
	}
	return ai, nil
}

func parsePrefixes(name string, vals []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(vals))
	for _, v := range vals {
		p, err := filters.ParsePrefix(v)
		if err != nil {
			return nil, usagef("invalid %s value %q: %v", name, v, err)
		}
		out = append(out, p)
	}
	return out, nil
}

func describe(flagName, source string) string {
	if source == "" {
		return "--" + flagName
	}
	return fmt.Sprintf("%q in %s", flagName, source)
}

func parsePeerID(name, s string) (peer.ID, error) {
	id, err := addr.PeerID(s)
	if err != nil {
		return "", usagef("invalid %s: %v", name, err)
	}
	return id, nil
}

// parseLocal turns a local TCP or UDP address as typed (PORT, HOST:PORT,
// [V6]:PORT, udp:PORT, HOST:PORT/udp or a multiaddr) into its multiaddr.
func parseLocal(name, s string) (ma.Multiaddr, error) {
	m, err := addr.Local(s)
	if err != nil {
		return nil, usagef("invalid %s value %q: %v", name, s, err)
	}
	return m, nil
}

// parsePeer turns a peer as typed (a bare peer ID, /p2p/ID or
// ADDR/p2p/ID) into its multiaddr.
func parsePeer(name, s string) (string, error) {
	m, _, err := addr.Peer(s)
	switch {
	case errors.Is(err, addr.ErrNotPeerID):
		return "", usagef("invalid %s: %v", name, err)
	case err != nil:
		return "", usagef("invalid %s value %q: %v", name, s, err)
	}
	return m.String(), nil
}

// parseTarget turns a forward target as typed into what the API takes:
// @NAME as it is, a peer as its multiaddr.
func parseTarget(name, s string) (string, error) {
	if _, ok := addr.Rendezvous(s); ok {
		return s, nil
	}
	if s == addr.RendezvousPrefix {
		return "", usagef("invalid %s value %q: want @NAME, the rendezvous string peers advertise", name, s)
	}
	return parsePeer(name, s)
}

// parseBootstrap checks --bootstrap values: peer multiaddrs, or the single
// value "none" (none is true, no peers). name says where the values came
// from, for the error.
func parseBootstrap(name string, vals []string) (peers []peer.AddrInfo, none bool, err error) {
	if len(vals) == 1 && vals[0] == "none" {
		return nil, true, nil
	}
	for _, v := range vals {
		if v == "none" {
			return nil, false, usagef("invalid %s value \"none\": \"none\" must be the only bootstrap value", name)
		}
		ai, err := parseP2PAddr(name, v)
		if err != nil {
			return nil, false, err
		}
		peers = append(peers, *ai)
	}
	return peers, false, nil
}
