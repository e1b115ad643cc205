package main

import (
	"strings"
	"testing"
	"time"

	"github.com/p2pd/p2pd/api"
)

// TestFormatUDPFlowEvent checks that a closed UDP flow's event line carries
// its datagram counts, and a TCP stream's does not.
func TestFormatUDPFlowEvent(t *testing.T) {
	at := time.Date(2026, 12, 4, 10, 0, 0, 0, time.Local)
	in, out, dropped := uint64(3), uint64(4), uint64(1)
	udp := api.Event{Time: at, Type: api.EventStreamClosed, Stream: &api.Stream{ID: 7, Protocol: "/x/dns/p2pd-udp/1",
		Peer: "P", BytesIn: 90, BytesOut: 120, DatagramsIn: &in, DatagramsOut: &out, Dropped: &dropped}}
	if got, want := formatEvent(udp), "10:00:00 stream_closed 7 /x/dns/p2pd-udp/1 P in=90 out=120 datagrams_in=3 datagrams_out=4 dropped=1"; got != want {
		t.Errorf("UDP flow: got %q, want %q", got, want)
	}
	tcp := api.Event{Time: at, Type: api.EventStreamClosed, Stream: &api.Stream{ID: 8, Protocol: "/x/ssh", Peer: "P", BytesIn: 1, BytesOut: 2}}
	if got, want := formatEvent(tcp), "10:00:00 stream_closed 8 /x/ssh P in=1 out=2"; got != want {
		t.Errorf("TCP stream: got %q, want %q", got, want)
	}
}

// TestStreamsTableShowsDrops checks that the terminal table of streams
// shows a flow's drops when it has some.
func TestStreamsTableShowsDrops(t *testing.T) {
	ss := sampleStreams()
	dropped := uint64(2)
	ss[1].Dropped = &dropped
	var b strings.Builder
	writeStreams(&b, ss, true, goldenNow)
	if !strings.Contains(b.String(), "700 B (9 dgrams, 2 dropped)") {
		t.Errorf("streams table without the flow's drops:\n%s", b.String())
	}
}
