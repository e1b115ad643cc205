// Package api defines the wire types of p2pd's control API: the routes, the
// JSON request and response bodies, and the one error shape every handler
// answers with. Both the daemon and the Go client import it; it imports no
// libp2p networking code, so the CLI stays small.
//
// The API is HTTP/JSON served on the daemon's --api address (loopback TCP or
// a unix socket). Every request carries "Authorization: Bearer <token>" with
// the token from REPO/api.token. docs/api.md describes each route.
package api

import "time"

// Prefix is the versioned path prefix every route lives under.
const Prefix = "/api/v1"

// Routes of the control API, relative to the server root.
const (
	RouteID           = Prefix + "/id"
	RoutePeers        = Prefix + "/peers"
	RouteConnect      = Prefix + "/connect"
	RouteFind         = Prefix + "/find"
	RouteListen       = Prefix + "/listen"
	RouteForward      = Prefix + "/forward"
	RouteListeners    = Prefix + "/listeners"
	RouteClose        = Prefix + "/listeners/close"
	RouteStreams      = Prefix + "/streams"
	RouteStreamsClose = Prefix + "/streams/close"
	RouteEvents       = Prefix + "/events"
	RouteMetrics      = Prefix + "/metrics"
	// RouteDebugPprof serves net/http/pprof's profiles
	// (.../profile?seconds=N, .../heap, ...).
	RouteDebugPprof = Prefix + "/debug/pprof"
)

// RouteRetry (POST) retries the failed listeners now, then answers with the
// listener list like RouteListeners.
const RouteRetry = Prefix + "/listeners/retry"

// Files a daemon keeps in its repo that clients read to find and
// authenticate to it.
const (
	// APIFile holds the multiaddr of the running daemon's control API. The
	// daemon writes it once it is ready and removes it at clean shutdown.
	APIFile = "api"
	// TokenFile holds the bearer token every API request must carry.
	TokenFile = "api.token"
)

// DefaultAPIAddr is where the daemon serves its API unless told otherwise.
const DefaultAPIAddr = "/ip4/127.0.0.1/tcp/5055"

// ID describes the node itself (GET RouteID).
type ID struct {
	ID           string   `json:"id"`
	Addresses    []string `json:"addresses"`
	AgentVersion string   `json:"agent_version"`
	Protocols    []string `json:"protocols"`
}

// Peer is one connected peer (GET RoutePeers returns a list of them).
type Peer struct {
	ID        string  `json:"id"`
	Address   string  `json:"address"`
	Direction string  `json:"direction"`
	LatencyMS float64 `json:"latency_ms"`
	// Connection is "direct" or "relayed": the best connection to the
	// peer (a direct one wins).
	Connection string `json:"connection"`
	// Transport is that connection's transport ("tcp", "quic", ...; for a
	// relayed connection, the one to the relay).
	Transport string `json:"transport"`
}

// ConnectRequest asks the daemon to dial a peer (POST RouteConnect).
type ConnectRequest struct {
	// Address is a multiaddr ending in /p2p/<peer id>.
	Address string `json:"address"`
}

// ConnectResponse names the peer that was connected.
type ConnectResponse struct {
	ID string `json:"id"`
}

// FindRequest asks for peers advertising a rendezvous string (POST RouteFind).
type FindRequest struct {
	Rendezvous string `json:"rendezvous"`
	// Timeout bounds the search; zero means the daemon's default (10 s).
	Timeout Duration `json:"timeout,omitempty"`
}

// FoundPeer is one peer found under a rendezvous string.
type FoundPeer struct {
	ID        string   `json:"id"`
	Addresses []string `json:"addresses"`
}

// ListenRequest asks the daemon to serve Protocol by dialling Target for
// every inbound stream (POST RouteListen).
type ListenRequest struct {
	Protocol            string   `json:"protocol"`
	Target              string   `json:"target_address"`
	AllowCustomProtocol bool     `json:"allow_custom_protocol,omitempty"`
	ReportPeerID        bool     `json:"report_peer_id,omitempty"`
	AllowPeers          []string `json:"allow_peers,omitempty"`
	// Foreground makes the listener live only as long as this request: the
	// daemon answers with the Listener, keeps the response open and removes
	// the listener when the client goes away.
	Foreground bool `json:"foreground,omitempty"`
}

// ForwardRequest asks the daemon to listen on Listen and turn every
// connection into a stream to Target speaking Protocol (POST RouteForward).
// Target is /p2p/ID, ADDR/p2p/ID, or @NAME: one of the peers advertising
// the rendezvous string NAME, chosen per connection as Pick says.
type ForwardRequest struct {
	Protocol            string `json:"protocol"`
	Listen              string `json:"listen_address"`
	Target              string `json:"target_address"`
	AllowCustomProtocol bool   `json:"allow_custom_protocol,omitempty"`
	// Pick is PickFailover (the default) or PickRoundRobin; only with a
	// @NAME target.
	Pick string `json:"pick,omitempty"`
	// Foreground: see ListenRequest.Foreground.
	Foreground bool `json:"foreground,omitempty"`
}

// Listener kinds.
const (
	KindForward = "forward"
	KindListen  = "listen"
)

// Ways a forward to @NAME picks its peer.
const (
	PickFailover   = "failover"
	PickRoundRobin = "round-robin"
)

// RendezvousPrefix starts a forward target that is a rendezvous name.
const RendezvousPrefix = "@"

// Listener is one entry of the listener registry (GET RouteListeners
// returns forwards first, then listens).
type Listener struct {
	Kind          string `json:"kind"`
	Protocol      string `json:"protocol"`
	ListenAddress string `json:"listen_address"`
	TargetAddress string `json:"target_address"`
	// State is StateActive, or StateFailed for a persisted entry that could
	// not be restored (LastError says why); a failed entry is retried while
	// the daemon runs and can be closed like any other.
	State string `json:"state"`
	// AllowedPeers (listen only) are the only peers allowed to open the
	// protocol; [] when every peer may.
	AllowedPeers []string `json:"allowed_peers"`
	// AllowPeers is AllowedPeers under its first name, kept for clients
	// written before it; absent when empty.
	AllowPeers   []string `json:"allow_peers,omitempty"`
	ReportPeerID bool     `json:"report_peer_id,omitempty"`
	Foreground   bool     `json:"foreground,omitempty"`
	// LastError is why the most recent dial of this entry failed, or, for
	// a failed entry, why it could not be restored.
	LastError   string     `json:"last_error,omitempty"`
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`
	// Pick, Peer and Candidates describe a forward to @NAME: how it picks,
	// the peer its last connection went to, and the peers advertising NAME
	// that the last lookup found.
	Pick       string   `json:"pick,omitempty"`
	Peer       string   `json:"peer,omitempty"`
	Candidates []string `json:"candidates,omitempty"`
}

// Listener states.
const (
	// StateActive is an entry that serves.
	StateActive = "active"
	// StateFailed is a persisted entry that could not be restored when the
	// daemon started (its port is taken, say). It stays in tunnels.json.
	StateFailed = "failed"
)

// CloseRequest selects listeners to close; set fields AND together
// (POST RouteClose).
type CloseRequest struct {
	All           bool   `json:"all,omitempty"`
	Protocol      string `json:"protocol,omitempty"`
	ListenAddress string `json:"listen_address,omitempty"`
	TargetAddress string `json:"target_address,omitempty"`
}

// CloseResponse counts what a close request ended.
type CloseResponse struct {
	Closed int `json:"closed"`
}

// Stream is one open bridged stream (GET RouteStreams returns a list).
type Stream struct {
	ID            uint64    `json:"id"`
	Protocol      string    `json:"protocol"`
	OriginAddress string    `json:"origin_address"`
	TargetAddress string    `json:"target_address"`
	Peer          string    `json:"peer"`
	BytesIn       uint64    `json:"bytes_in"`
	BytesOut      uint64    `json:"bytes_out"`
	Started       time.Time `json:"started"`
	// DatagramsIn, DatagramsOut and Dropped are set only for a UDP flow:
	// whole datagrams from and to the peer, and datagrams dropped either
	// way. Its BytesIn and BytesOut then count datagram payloads.
	DatagramsIn  *uint64 `json:"datagrams_in,omitempty"`
	DatagramsOut *uint64 `json:"datagrams_out,omitempty"`
	Dropped      *uint64 `json:"dropped,omitempty"`
}

// StreamCloseRequest resets one stream by ID, or all of them
// (POST RouteStreamsClose).
type StreamCloseRequest struct {
	ID  *uint64 `json:"id,omitempty"`
	All bool    `json:"all,omitempty"`
}
