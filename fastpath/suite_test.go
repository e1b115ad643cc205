package fastpath

import (
	"bytes"
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/p2pd/p2pd/streams"
	"github.com/p2pd/p2pd/streams/streamstest"
)

func TestMain(m *testing.M) {
	streamstest.PeerMain() // the idle-streams test's peer process
	goleak.VerifyTestMain(m)
}

// engineOpts returns registry options with a new engine built from opts.
func engineOpts(opts ...Option) func() []streams.Option {
	return func() []streams.Option {
		e, err := New(opts...)
		if err != nil {
			panic(err)
		}
		return []streams.Option{streams.WithEngine(e)}
	}
}

// newRegistry returns a registry bridging with a new engine built from opts.
func newRegistry(opts ...Option) *streams.Registry {
	return streams.NewRegistry(engineOpts(opts...)()...)
}

// TestFastBridge runs the stream-behaviour suite (the one the plain bridge
// passes in package streams) against the engine, and its core against the
// engine's other ways to read.
func TestFastBridge(t *testing.T) {
	streamstest.Run(t, engineOpts())
	for _, v := range []struct {
		name string
		opts []Option
	}{
		{"park at once", []Option{WithParkDelay(0)}},
		{"raw reads", []Option{withLocalMode(localRaw)}},
		{"plain reads", []Option{withLocalMode(localPlain)}},
		{"small buffers", []Option{WithBufferSize(4 << 10)}},
	} {
		t.Run(v.name, func(t *testing.T) {
			streamstest.RunSome(t, engineOpts(v.opts...), "HalfClose", "RoundTrips", "MessageSizes", "ResetByService", "ResetByClient")
		})
	}
}

func TestOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  Option
		want string
	}{
		{"buffer too small", WithBufferSize(1024), "invalid fast bridge option: buffer size 1024 out of range [4096, 16777216]"},
		{"buffer too large", WithBufferSize(32 << 20), "invalid fast bridge option: buffer size 33554432 out of range [4096, 16777216]"},
		{"negative park delay", WithParkDelay(-time.Second), "invalid fast bridge option: park delay -1s out of range [0s, 1m0s]"},
		{"park delay too long", WithParkDelay(time.Hour), "invalid fast bridge option: park delay 1h0m0s out of range [0s, 1m0s]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if e, err := New(tc.opt); err == nil || err.Error() != tc.want || e != nil {
				t.Fatalf("New = %v, %v; want error %q", e, err, tc.want)
			}
		})
	}
}

// bridgeGoroutines counts the goroutines running the engine's bridge code.
func bridgeGoroutines() int {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte("fastpath.(*bridge).run")) {
			n++
		}
	}
	return n
}

// TestIdleGoroutines checks that with the poller an idle bridge keeps one
// goroutine once its park delay has passed, and two when every direction
// waits in its own or the delay has not passed yet.
func TestIdleGoroutines(t *testing.T) {
	const conns = 20
	for _, tc := range []struct {
		name      string
		opts      []Option
		perBridge int
		stays     bool // perBridge holds for a while (no parking meanwhile)
	}{
		{"poll, park at once", []Option{WithParkDelay(0)}, 1, false},
		{"poll, default delay", nil, 1, false},
		{"poll, before the delay", []Option{WithParkDelay(time.Minute)}, 2, true},
		{"raw", []Option{withLocalMode(localRaw)}, 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tun := streamstest.NewTunnel(t, streamstest.Echo, streamstest.Config{Opts: engineOpts(tc.opts...)})
			for range conns {
				streamstest.PingConn(t, tun.Dial(t), "idle")
			}
			want := 2 * conns * tc.perBridge // a bridge on A and one on B
			streamstest.WaitFor(t, fmt.Sprintf("%d bridge goroutines", want), func() bool {
				return bridgeGoroutines() == want
			})
			if tc.stays {
				time.Sleep(300 * time.Millisecond)
				if got := bridgeGoroutines(); got != want {
					t.Fatalf("%d bridge goroutines 300 ms later, want still %d", got, want)
				}
			}
		})
	}
}

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
			tun := streamstest.NewTunnel(t, streamstest.Echo, streamstest.Config{Opts: engineOpts(tc.opts...)})
			var cs []net.Conn
			for range conns {
				cs = append(cs, tun.Dial(t)) // silent: the client says nothing
			}
			// A's bridges exist at once; B's once A's stream sent its
			// protocol proposal, which a silent client's bridge does.
			streamstest.WaitFor(t, "every bridge to be open", func() bool {
				return tun.RegA.Len() == conns && tun.RegB.Len() == conns
			})
			want := 2 * conns // one goroutine per bridge, on A and on B
			streamstest.WaitFor(t, fmt.Sprintf("%d bridge goroutines", want), func() bool {
				return bridgeGoroutines() == want
			})
			for i, c := range cs {
				streamstest.PingConn(t, c, fmt.Sprintf("wake %d", i))
			}
		})
	}
}
