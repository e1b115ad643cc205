package streams

import (
	"fmt"
	"net"
	"testing"
)

// TestNewBridgeStartsRunning checks how a new bridge starts on the
// poller: its local side waits in a goroutine of its own at first (two
// goroutines per bridge), connections that never talk still park after the
// park delay (one each), and a parked connection, registered with the
// poller only then, wakes up for data and answers, also with a park delay
// shorter than any wake-up (1 ns: a woken goroutine used to give up before
// its first read and park again, over and over).
func TestNewBridgeStartsRunning(t *testing.T) {
	const conns = 10
	for _, tc := range []struct {
		name string
		opts []Option
	}{
		{"default park delay", nil},
		{"short park delay", []Option{WithParkDelay(1)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tun := newTunnel(t, echo, tunnelConfig{optsA: tc.opts, optsB: tc.opts})
			var cs []net.Conn
			for range conns {
				cs = append(cs, tun.dial(t)) // silent: the client says nothing
			}
			// A's bridges exist at once; B's once A's stream sent its
			// protocol proposal, which a silent client's bridge does.
			waitFor(t, "every bridge to be open", func() bool {
				return tun.regA.Len() == conns && tun.regB.Len() == conns
			})
			want := 2 * conns // one goroutine per bridge, on A and on B
			waitFor(t, fmt.Sprintf("%d bridge goroutines", want), func() bool {
				return bridgeGoroutines() == want
			})
			for i, c := range cs {
				pingConn(t, c, fmt.Sprintf("wake %d", i))
			}
		})
	}
}
