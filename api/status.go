package api

import "time"

// RouteStatus answers GET with a Status: can others reach this node, and how.
const RouteStatus = Prefix + "/status"

// Status is the node's reachability at a glance (GET RouteStatus).
type Status struct {
	ID string `json:"id"`
	// Reachability is "public", "private" or "unknown" (AutoNAT has not
	// decided, or there is no public AutoNAT server to ask).
	Reachability string `json:"reachability"`
	// ReachabilityForced is true when --reachability pinned it.
	ReachabilityForced bool `json:"reachability_forced"`
	// Addresses are the addresses the node listens on.
	Addresses []string `json:"addresses"`
	// Announced are the addresses the node tells others (identify, the
	// DHT): public ones, --announce ones and circuit addresses.
	Announced []string `json:"announced"`
	// Gateway is the HTTP gateway's address (daemon --gateway); empty
	// without one.
	Gateway string `json:"gateway,omitempty"`
	// Relays are the configured relays and this node's reservations.
	Relays []RelayReservation `json:"relays"`
	// RelayService describes the relay this node runs for others, if any.
	RelayService *RelayService `json:"relay_service,omitempty"`
	// HolePunching says whether DCUtR can run.
	HolePunching HolePunching `json:"hole_punching"`
	DHT          DHTStatus    `json:"dht"`
	Peers        PeerCounts   `json:"peers"`
	// Verdict is one line for a human: the state, and the next step when
	// something is wrong.
	Verdict string `json:"verdict"`
}

// RelayReservation is this node's slot on one relay.
type RelayReservation struct {
	// Peer is the relay's peer ID.
	Peer string `json:"peer"`
	// Active is true while the relay holds the slot.
	Active bool `json:"active"`
	// Expires is when the slot ends unless renewed (the daemon renews it
	// two minutes before); null when not active.
	Expires *time.Time `json:"expires"`
	// Addresses are the circuit addresses others reach this node at
	// through the relay.
	Addresses []string `json:"addresses"`
	// LimitDuration and LimitData are the relay's limits per relayed
	// connection; absent when it sets none.
	LimitDuration Duration `json:"limit_duration,omitempty"`
	LimitData     uint64   `json:"limit_data,omitempty"`
	// Error is why the last attempt failed, if it did.
	Error string `json:"error,omitempty"`
}

// RelayService is what this node's relay allows others.
type RelayService struct {
	MaxReservations int      `json:"max_reservations"`
	MaxCircuits     int      `json:"max_circuits"`
	LimitDuration   Duration `json:"limit_duration"`
	LimitData       int64    `json:"limit_data"`
	AllowPeers      []string `json:"allow_peers,omitempty"`
}

// HolePunching is the state of DCUtR on this node.
type HolePunching struct {
	Enabled bool `json:"enabled"`
	// Ready is true once the node knows a public address of its own to
	// punch from (a public peer observed it) and serves /libp2p/dcutr.
	Ready bool `json:"ready"`
}

// DHTStatus is the state of the node's DHT.
type DHTStatus struct {
	// Mode is the configured mode: auto, server, client or off.
	Mode             string `json:"mode"`
	RoutingTableSize int    `json:"routing_table_size"`
	// Bootstrapped is true when the routing table has peers.
	Bootstrapped bool `json:"bootstrapped"`
}

// PeerCounts counts connected peers by their best connection.
type PeerCounts struct {
	Direct  int `json:"direct"`
	Relayed int `json:"relayed"`
}

// HolePunch is one step of hole punching with a peer (EventHolePunch).
type HolePunch struct {
	// Kind is "attempt", "result" or "direct_dial".
	Kind      string  `json:"kind"`
	Attempt   int     `json:"attempt,omitempty"`
	Success   bool    `json:"success"`
	ElapsedMS float64 `json:"elapsed_ms,omitempty"`
	Error     string  `json:"error,omitempty"`
}

// Connection kinds in Peer.Connection.
const (
	ConnectionDirect  = "direct"
	ConnectionRelayed = "relayed"
)
