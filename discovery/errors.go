package discovery

import "errors"

var (
	// ErrDHTOff is returned by Advertise, FindPeers, FindAll, FindPeer and
	// Join when the service was built with Mode("off"): there is no DHT to
	// ask. mDNS still works in that mode.
	ErrDHTOff = errors.New("the DHT is off")

	// ErrNotStarted is returned by DHT operations called before Start.
	ErrNotStarted = errors.New("discovery service not started")

	// ErrClosed is returned by operations called after Close, and by Start
	// when it is called again.
	ErrClosed = errors.New("discovery service closed")

	// ErrNoPeers is returned by Advertise and FindAll while the DHT routing
	// table is empty: the node has not (yet) reached any DHT server,
	// usually because no bootstrap peer answered, or all its peers are DHT
	// clients. Only this node's own records were used: Advertise stored
	// the record locally, FindAll returns what the local store holds.
	ErrNoPeers = errors.New("no DHT peers yet: the routing table is empty, so no other node could be asked (check the bootstrap peers)")

	// ErrNoAddrs is returned by Advertise when, after the address filter,
	// the node has no address left to announce. The DHT would otherwise
	// accept the call and silently store nothing.
	ErrNoAddrs = errors.New("no address left to announce after the address filter")
)
