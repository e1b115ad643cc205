package streams

import (
	"net"

	"github.com/libp2p/go-libp2p/core/network"
)

// Engine is a faster way to bridge streams than the registry's plain
// bridge: package fastpath provides the one p2pd uses (WithEngine). A
// Registry without an engine, or whose engine failed, bridges every stream
// with the plain bridge, which is the reference behaviour an engine must
// keep: two directions copied independently, a clean end of one side
// half-closing the other, the first error resetting the stream and aborting
// the local connection.
type Engine interface {
	// NewPump prepares the bridge of s and c without starting it; done
	// must be called exactly once, from a goroutine the engine owns, when
	// both directions are over: with nil after two clean ends, else with
	// why the bridge was reset. An error means the engine cannot bridge
	// any more (its poller died, say): the registry then says so loudly
	// and bridges this stream and every later one with the plain bridge.
	NewPump(s network.Stream, c net.Conn, done func(error)) (Pump, error)
	// Close releases the engine once none of its pumps runs any more.
	Close() error
}

// Pump is one bridge between a stream and a local connection.
type Pump interface {
	// Start starts copying; it is called once, after NewPump.
	Start()
	// Reset tears the bridge down with reason unless it has already
	// ended; done is then called with reason.
	Reset(reason error)
	// Bytes returns the bytes copied so far from the peer (to the local
	// connection) and to the peer.
	Bytes() (in, out uint64)
}
