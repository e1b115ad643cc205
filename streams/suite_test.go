package streams_test

import (
	"errors"
	"syscall"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/p2pd/p2pd/streams"
	"github.com/p2pd/p2pd/streams/streamstest"
)

func TestMain(m *testing.M) {
	streamstest.PeerMain() // the idle-streams test's peer process
	goleak.VerifyTestMain(m)
}

// TestPlainBridge runs the stream-behaviour suite against the registry's
// plain bridge (the fast one runs it in package fastpath).
func TestPlainBridge(t *testing.T) {
	streamstest.Run(t, nil)
}

func TestOptions(t *testing.T) {
	tests := []struct {
		name string
		opt  streams.Option
		want string
	}{
		{"nil conn manager", streams.WithConnManager(nil), "invalid stream registry option: connection manager is nil"},
		{"empty tag", streams.WithProtectTag(""), "invalid stream registry option: protect tag is empty"},
		{"nil open hook", streams.WithOnOpen(nil), "invalid stream registry option: open hook is nil"},
		{"nil close hook", streams.WithOnClose(nil), "invalid stream registry option: close hook is nil"},
		{"nil engine", streams.WithEngine(nil), "invalid stream registry option: bridge engine is nil"},
		{"nil registerer", streams.WithPrometheusRegisterer(nil), "invalid stream registry option: prometheus registerer is nil"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := streams.New(tc.opt)
			if err == nil || err.Error() != tc.want || r != nil {
				t.Fatalf("New = %v, %v; want error %q", r, err, tc.want)
			}
			defer func() {
				if p := recover(); p == nil {
					t.Fatal("NewRegistry did not panic")
				}
			}()
			streams.NewRegistry(tc.opt)
		})
	}

	reg := prometheus.NewRegistry()
	r := streams.NewRegistry(streams.WithProtectTag("x"), streams.WithPrometheusRegisterer(reg))
	if _, err := streams.New(streams.WithPrometheusRegisterer(reg)); err == nil {
		t.Error("a second registry registered the same metrics without an error")
	}
	local, remote := streamstest.TCPPair(t)
	if _, err := r.Bridge(nil, local, nil, nil); err == nil || err.Error() != "bridging a stream: stream and connection must both be set" {
		t.Fatalf("Bridge(nil stream) = %v", err)
	}
	if _, err := remote.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("conn of a refused Bridge: read %v, want ECONNRESET", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
}
