package repo

import (
	"errors"
	"io/fs"

	"github.com/p2pd/p2pd/api"
	"github.com/p2pd/p2pd/discovery"
)

// Config is the daemon's settings as stored in config.json. Every `p2pd
// daemon` flag has a field here; a flag given on the command line wins over
// the file.
type Config struct {
	// Listen are the libp2p listen multiaddrs. Empty: the host package's
	// DefaultListenAddrs, where one address family failing (no IPv6) is
	// only a warning.
	Listen []string `json:"listen"`
	// Bootstrap are the DHT bootstrap peers; ["none"] for none, empty for
	// the public libp2p list.
	Bootstrap []string `json:"bootstrap"`
	// Rendezvous strings this node advertises itself under.
	Rendezvous []string `json:"rendezvous"`
	// DHT is the DHT mode: auto, server, client or off.
	DHT string `json:"dht"`
	// DHTPrefix is the DHT protocol prefix; "/ipfs" is the public network.
	DHTPrefix string `json:"dht_prefix"`
	// Deny and Allow are the address filters (CIDRs).
	Deny  []string `json:"deny"`
	Allow []string `json:"allow"`
	// API is the control API multiaddr.
	API string `json:"api"`
	// APIAllowRemote lets API be a non-loopback address.
	APIAllowRemote bool `json:"api_allow_remote,omitempty"`
	// MDNS turns LAN discovery on.
	MDNS bool `json:"mdns"`
	// TrustedNetworks are CIDRs whose peers are exempt from the per-IP
	// connection limits (many nodes behind one address).
	TrustedNetworks []string `json:"trusted_networks,omitempty"`
	// DialTimeout bounds a forward's dial of its target peer, e.g. "30s".
	DialTimeout string `json:"dial_timeout,omitempty"`
	// MaxProcs is how many cores the daemon runs Go code on at once; 0
	// leaves Go's default (every core, or $GOMAXPROCS).
	MaxProcs int `json:"max_procs,omitempty"`
	// UDPIdleTimeout closes a UDP flow that saw no datagram either way for
	// this long, e.g. "2m"; empty means udpflow.DefaultIdleTimeout.
	UDPIdleTimeout string `json:"udp_idle_timeout,omitempty"`
	// Gateway is the HTTP gateway's listen multiaddr; empty: no gateway.
	Gateway string `json:"gateway,omitempty"`
	// GatewayAllowRemote lets Gateway be a non-loopback address.
	GatewayAllowRemote bool `json:"gateway_allow_remote,omitempty"`
	// GatewayTimeout bounds how long a gateway request waits for its peer
	// to be reached and to start answering, e.g. "1m"; empty means
	// gateway.DefaultTimeout.
	GatewayTimeout string `json:"gateway_timeout,omitempty"`

	// Relays are relay multiaddrs (each ending in /p2p/ID) the node keeps
	// a reservation on.
	Relays []string `json:"relays,omitempty"`
	// Reachability is auto (AutoNAT decides), public or private.
	Reachability string `json:"reachability,omitempty"`
	// RelayService makes the node a relay for others; the Relay* fields
	// below are its limits (absent: the defaults).
	RelayService         bool     `json:"relay_service,omitempty"`
	RelayMaxReservations *int     `json:"relay_max_reservations,omitempty"`
	RelayMaxCircuits     *int     `json:"relay_max_circuits,omitempty"`
	RelayLimitDuration   string   `json:"relay_limit_duration,omitempty"` // "0s": no limit
	RelayLimitData       *int64   `json:"relay_limit_data,omitempty"`     // 0: no limit
	RelayAllowPeers      []string `json:"relay_allow_peers,omitempty"`
	// Announce are extra addresses to announce (a public address not on
	// an interface).
	Announce []string `json:"announce,omitempty"`

	// LogLevel is the level of p2pd's own logs: debug, info, warn or
	// error; empty is info. GOLOG_LOG_LEVEL, when set, wins.
	LogLevel string `json:"log_level,omitempty"`
	// LogFormat is text or json; empty is text.
	LogFormat string `json:"log_format,omitempty"`
}

// DefaultConfig is what `p2pd init` writes.
func DefaultConfig() Config {
	return Config{
		Listen:     []string{},
		Bootstrap:  []string{},
		Rendezvous: []string{},
		DHT:        "auto",
		DHTPrefix:  discovery.DefaultProtocolPrefix,
		Deny:       []string{},
		Allow:      []string{},
		API:        api.DefaultAPIAddr,
		MDNS:       true,
	}
}

// Config reads config.json; a missing file yields DefaultConfig.
func (r *Repo) Config() (Config, error) {
	c := DefaultConfig()
	if err := r.ReadJSON(ConfigFile, &c); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return DefaultConfig(), nil
		}
		return Config{}, err
	}
	return c, nil
}

// SaveConfig writes config.json atomically.
func (r *Repo) SaveConfig(c Config) error { return r.WriteJSON(ConfigFile, c) }
