package main

import (
	"flag"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/p2pd/p2pd/daemon"
	"github.com/p2pd/p2pd/nat"
	"github.com/p2pd/p2pd/repo"
)

// natFlags are the daemon's relay and NAT flags.
type natFlags struct {
	relays          listFlag
	reachability    string
	relayService    bool
	maxReservations int
	maxCircuits     int
	limitDuration   time.Duration
	limitData       int64
	allowPeers      listFlag
	announce        listFlag
}

func (f *natFlags) register(fs *flag.FlagSet) {
	fs.Var(&f.relays, "relay", "keep a reservation on the relay at `MULTIADDR/p2p/ID`, to be reachable through it from behind a NAT (repeatable)")
	fs.StringVar(&f.reachability, "reachability", daemon.ReachabilityAuto, "reachability `MODE`: auto (AutoNAT decides), public or private (private announces the relays' circuit addresses at once)")
	fs.BoolVar(&f.relayService, "relay-service", false, "relay for other peers (circuit relay v2) and answer their AutoNAT checks")
	fs.IntVar(&f.maxReservations, "relay-max-reservations", nat.DefaultRelayMaxReservations, "relay service: at most `N` peers hold a slot")
	fs.IntVar(&f.maxCircuits, "relay-max-circuits", nat.DefaultRelayMaxCircuits, "relay service: at most `N` relayed connections per peer")
	fs.DurationVar(&f.limitDuration, "relay-limit-duration", nat.DefaultRelayLimitDuration, "relay service: a relayed connection lives at most `D` (0: no limit)")
	fs.Int64Var(&f.limitData, "relay-limit-data", nat.DefaultRelayLimitData, "relay service: a relayed connection carries at most `BYTES` each way (0: no limit)")
	fs.Var(&f.allowPeers, "relay-allow-peer", "relay service: serve only peer `ID` (repeatable; for an unlimited relay restricted to a team)")
	fs.Var(&f.announce, "announce", "also announce `MULTIADDR`, a public address not on any interface (repeatable; e.g. a VPS behind 1:1 NAT)")
}

// merge lays the NAT flags the user set over cfg.
func (f *natFlags) merge(fs *flag.FlagSet, cfg *repo.Config) {
	fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "relay":
			cfg.Relays = f.relays
		case "reachability":
			cfg.Reachability = f.reachability
		case "relay-service":
			cfg.RelayService = f.relayService
		case "relay-max-reservations":
			cfg.RelayMaxReservations = &f.maxReservations
		case "relay-max-circuits":
			cfg.RelayMaxCircuits = &f.maxCircuits
		case "relay-limit-duration":
			cfg.RelayLimitDuration = f.limitDuration.String()
		case "relay-limit-data":
			cfg.RelayLimitData = &f.limitData
		case "relay-allow-peer":
			cfg.RelayAllowPeers = f.allowPeers
		case "announce":
			cfg.Announce = f.announce
		}
	})
}

// natOptions turns the NAT settings into daemon options; src names where a
// setting came from, for errors.
func natOptions(cfg repo.Config, src func(string) string) ([]daemon.Option, error) {
	var opts []daemon.Option
	var relayAddrs []ma.Multiaddr
	for _, s := range cfg.Relays {
		if _, err := parseP2PAddr(src("relay"), s); err != nil {
			return nil, err
		}
		relayAddrs = append(relayAddrs, ma.StringCast(s))
	}
	if len(relayAddrs) > 0 {
		relays, err := nat.MergeRelays(relayAddrs)
		if err != nil {
			return nil, usagef("invalid %s values: %v", src("relay"), err)
		}
		opts = append(opts, daemon.Relays(relays...))
	}
	reach, err := daemon.ParseReachability(cfg.Reachability)
	if err != nil {
		return nil, usagef("invalid %s value %q: %v", src("reachability"), cfg.Reachability, err)
	}
	opts = append(opts, daemon.Reachability(reach))

	rc, err := relayConfig(cfg, src)
	if err != nil {
		return nil, err
	}
	if rc != nil {
		opts = append(opts, daemon.RelayService(*rc))
	}
	var announce []ma.Multiaddr
	for _, s := range cfg.Announce {
		m, err := parseMultiaddr(src("announce"), s)
		if err != nil {
			return nil, err
		}
		if !isTransportAddr(m) {
			return nil, usagef("invalid %s value %q: want a TCP (/ip4/ADDR/tcp/PORT) or QUIC (/ip4/ADDR/udp/PORT/quic-v1) address", src("announce"), s)
		}
		announce = append(announce, m)
	}
	if len(announce) > 0 {
		opts = append(opts, daemon.Announce(announce...))
	}
	return opts, nil
}

// relayConfig checks the relay service settings; nil without
// --relay-service. Limits given without it are an error, as they would do
// nothing.
func relayConfig(cfg repo.Config, src func(string) string) (*nat.RelayConfig, error) {
	rc := nat.DefaultRelayConfig()
	given := ""
	if cfg.RelayMaxReservations != nil {
		given = "relay-max-reservations"
		if rc.MaxReservations = *cfg.RelayMaxReservations; rc.MaxReservations < 1 {
			return nil, usagef("invalid %s value %d: want at least 1", src(given), rc.MaxReservations)
		}
	}
	if cfg.RelayMaxCircuits != nil {
		given = "relay-max-circuits"
		if rc.MaxCircuits = *cfg.RelayMaxCircuits; rc.MaxCircuits < 1 {
			return nil, usagef("invalid %s value %d: want at least 1", src(given), rc.MaxCircuits)
		}
	}
	if cfg.RelayLimitDuration != "" {
		given = "relay-limit-duration"
		d, err := time.ParseDuration(cfg.RelayLimitDuration)
		if err != nil || d < 0 {
			return nil, usagef("invalid %s value %q: want a duration like 2m, or 0 for no limit", src(given), cfg.RelayLimitDuration)
		}
		rc.LimitDuration = d
	}
	if cfg.RelayLimitData != nil {
		given = "relay-limit-data"
		if rc.LimitData = *cfg.RelayLimitData; rc.LimitData < 0 {
			return nil, usagef("invalid %s value %d: want a number of bytes, or 0 for no limit", src(given), rc.LimitData)
		}
	}
	for _, s := range cfg.RelayAllowPeers {
		given = "relay-allow-peer"
		id, err := parsePeerID(src(given), s)
		if err != nil {
			return nil, err
		}
		rc.AllowPeers = append(rc.AllowPeers, id)
	}
	if !cfg.RelayService {
		if given != "" {
			return nil, usagef("%s needs --relay-service", src(given))
		}
		return nil, nil
	}
	return &rc, nil
}

// isTransportAddr reports whether m is an IP address with a TCP port or a
// QUIC v1 port and nothing more.
func isTransportAddr(m ma.Multiaddr) bool {
	var codes []int
	for _, c := range m {
		codes = append(codes, c.Code())
	}
	if len(codes) < 2 || (codes[0] != ma.P_IP4 && codes[0] != ma.P_IP6 && codes[0] != ma.P_DNS && codes[0] != ma.P_DNS4 && codes[0] != ma.P_DNS6) {
		return false
	}
	return (len(codes) == 2 && codes[1] == ma.P_TCP) || (len(codes) == 3 && codes[1] == ma.P_UDP && codes[2] == ma.P_QUIC_V1)
}
