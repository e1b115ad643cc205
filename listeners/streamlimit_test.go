package listeners

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	manet "github.com/multiformats/go-multiaddr/net"
)

// probeDialTimeout is the dial timeout of the forwards that run into the
// QUIC stream limit: how long they wait for a stream before failing. It
// only makes the test quicker; nothing is timed.
const probeDialTimeout = 300 * time.Millisecond

// openHeld opens a connection through a forward at fwd and checks, with
// one echoed message, that its stream is open end to end. The connection
// stays open until the test ends or the caller closes it.
func openHeld(t *testing.T, fwd Info, i int) net.Conn {
	t.Helper()
	c, err := manet.Dial(fwd.ListenAddr)
	if err != nil {
		t.Fatalf("connection %d: %v", i, err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(testTimeout))
	msg := fmt.Sprintf("connection %d", i)
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("connection %d: writing: %v", i, err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
		t.Fatalf("connection %d: read back %q, %v; want %q", i, buf, err, msg)
	}
	return c
}

// TestQUICStreamLimitExplained fills the one QUIC connection between two
// hosts with go-libp2p's limit of 256 streams, through a forward, and
// checks that:
//   - one more connection through a forward fails after its dial timeout
//     with a last error, a log entry and an OpenStream error that name the
//     limit (errors.Is finds both ErrQUICStreamLimit and the deadline),
//     with and without the one-frame proposal;
//   - a stream waiting past the limit is not refused: it opens as soon as
//     one of the 256 ends.
//
// The forward holding the streams keeps the default dial timeout, so that
// a slow machine never fails one of the 256; the forwards that must fail
// are on registries of the same host with a short one.
func TestQUICStreamLimitExplained(t *testing.T) {
	logs := captureLogs(t)
	svc := newService(t, echo)
	hA := newQUICHost(t)
	holder := newNodeOn(t, hA)
	b := newNodeOn(t, newQUICHost(t))
	listenOn(t, b, svc.addr)
	target := addrTarget(t, b)

	fwd := forwardTo(t, holder, target)
	held := make([]net.Conn, 0, quicMaxStreams)
	for i := range quicMaxStreams {
		held = append(held, openHeld(t, fwd, i))
	}
	conns := hA.Network().ConnsToPeer(b.h.ID())
	if len(conns) != 1 || conns[0].ConnState().Transport != quicTransport {
		t.Fatalf("connections to B: %d (%v); want one QUIC connection", len(conns), conns)
	}
	if n := outboundStreams(conns[0]); n != quicMaxStreams {
		t.Fatalf("A has %d streams open to B, want %d", n, quicMaxStreams)
	}

	// A 257th connection through the same forward waits for a stream.
	waiting, err := manet.Dial(fwd.ListenAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer waiting.Close()
	_ = waiting.SetDeadline(time.Now().Add(testTimeout))
	const late = "the 257th connection"
	if _, err := waiting.Write([]byte(late)); err != nil {
		t.Fatal(err)
	}

	wantText := fmt.Sprintf("the connection to %s is QUIC and already carries %d streams", b.h.ID(), quicMaxStreams)
	for _, oneFrame := range []bool{true, false} {
		t.Run(fmt.Sprintf("one-frame=%v", oneFrame), func(t *testing.T) {
			probe := newNodeOn(t, hA, WithDialTimeout(probeDialTimeout), WithOneFrameProposal(oneFrame))
			pfwd := forwardTo(t, probe, target)
			got, err := roundTrip(t, pfwd.ListenAddr, []byte("anyone there?"))
			if len(got) != 0 || !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("client read %q, %v; want nothing and a connection reset", got, err)
			}
			var entry Info
			waitFor(t, "LastError to be set", func() bool {
				entry = probe.reg.List()[0]
				return entry.LastError != ""
			})
			for _, want := range []string{"context deadline exceeded", ErrQUICStreamLimit.Error(), wantText,
				"close some, or let the peer listen on TCP"} {
				if !strings.Contains(entry.LastError, want) {
					t.Errorf("LastError = %q, want it to contain %q", entry.LastError, want)
				}
			}
			waitFor(t, "the failure to be logged", func() bool {
				return logs.has(map[string]string{"peer": b.h.ID().String(), "err": entry.LastError})
			})

			// The same explanation reaches OpenStream's callers as an error
			// they can test.
			ctx, cancel := context.WithTimeout(t.Context(), probeDialTimeout)
			defer cancel()
			s, err := probe.reg.OpenStream(ctx, addrInfo(b.h), testProto)
			if err == nil {
				_ = s.Reset()
				t.Fatal("OpenStream past the limit succeeded")
			}
			if !errors.Is(err, ErrQUICStreamLimit) || !errors.Is(err, context.DeadlineExceeded) ||
				!strings.Contains(err.Error(), wantText) {
				t.Errorf("OpenStream: %v; want ErrQUICStreamLimit wrapping context.DeadlineExceeded, saying %q", err, wantText)
			}
		})
	}

	// One of the 256 ends (a clean close both ways): the waiting
	// connection gets its stream and its bytes come back.
	if err := held[0].(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if rest, err := io.ReadAll(held[0]); err != nil || len(rest) != 0 {
		t.Fatalf("ending connection 0: read %q, %v; want a clean EOF", rest, err)
	}
	buf := make([]byte, len(late))
	if _, err := io.ReadFull(waiting, buf); err != nil || string(buf) != late {
		t.Fatalf("waiting connection: read back %q, %v; want %q", buf, err, late)
	}
	if e := holder.reg.List()[0]; e.LastError != "" {
		t.Errorf("the holding forward recorded %q, want no error", e.LastError)
	}
}

// TestStreamLimitNotClaimed checks that a failed stream opening is left
// as it is when the QUIC limit is not the reason: on a TCP connection, on
// a QUIC connection with streams to spare, with no connection, or for an
// error other than a timeout.
func TestStreamLimitNotClaimed(t *testing.T) {
	timedOut := fmt.Errorf("opening stream: %w", context.DeadlineExceeded)
	for _, tc := range []struct {
		name    string
		newHost func(testing.TB) host.Host
		connect bool
		err     error
	}{
		{"TCP connection", newHost, true, timedOut},
		{"QUIC connection with streams to spare", newQUICHost, true, timedOut},
		{"QUIC connection, not a timeout", newQUICHost, true, ErrNoAddresses},
		{"no connection", newQUICHost, false, timedOut},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newNodeOn(t, tc.newHost(t)), tc.newHost(t)
			if tc.connect {
				if err := a.h.Connect(t.Context(), addrInfo(b)); err != nil {
					t.Fatal(err)
				}
			}
			if got := a.reg.explainStreamLimit(b.ID(), tc.err); got != tc.err {
				t.Errorf("explainStreamLimit(%v) = %v, want it unchanged", tc.err, got)
			}
		})
	}
}
