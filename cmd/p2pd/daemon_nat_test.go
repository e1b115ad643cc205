package main

import (
	"strings"
	"testing"
	"time"

	"github.com/p2pd/p2pd/api"
	"github.com/p2pd/p2pd/repo"
)

const relayPeer = "12D3KooWAEYtYAwFkN95p97zyuV2QZWDUnuY2fcbvMDtX7C9bUqF"

// TestNATFlagErrors checks every NAT flag's bad values: each is refused
// before the daemon touches the disk, with exit 2 and a message that names
// the flag, the value and what was expected.
func TestNATFlagErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"relay not a multiaddr", []string{"--relay", "relay.example.com"},
			`invalid --relay value "relay.example.com": not a multiaddr (failed to parse multiaddr "relay.example.com": must begin with /)`},
		{"relay without peer ID", []string{"--relay", "/ip4/11.0.0.10/tcp/4001"},
			`invalid --relay value "/ip4/11.0.0.10/tcp/4001": want a multiaddr ending in /p2p/<peer id> (invalid p2p multiaddr)`},
		{"unknown reachability", []string{"--reachability", "sometimes"},
			`invalid --reachability value "sometimes": want auto, public or private`},
		{"zero max reservations", []string{"--relay-service", "--relay-max-reservations", "0"},
			`invalid --relay-max-reservations value 0: want at least 1`},
		{"negative max circuits", []string{"--relay-service", "--relay-max-circuits", "-3"},
			`invalid --relay-max-circuits value -3: want at least 1`},
		{"negative limit duration", []string{"--relay-service", "--relay-limit-duration", "-1s"},
			`invalid --relay-limit-duration value "-1s": want a duration like 2m, or 0 for no limit`},
		{"negative limit data", []string{"--relay-service", "--relay-limit-data", "-1"},
			`invalid --relay-limit-data value -1: want a number of bytes, or 0 for no limit`},
		{"bad allowed peer", []string{"--relay-service", "--relay-allow-peer", "bob"},
			`invalid --relay-allow-peer: not a peer ID: "bob" (peer IDs look like 12D3KooW... or Qm...)`},
		{"limit without relay service", []string{"--relay-limit-data", "0"},
			`--relay-limit-data needs --relay-service`},
		{"allowed peer without relay service", []string{"--relay-allow-peer", relayPeer},
			`--relay-allow-peer needs --relay-service`},
		{"announce not a multiaddr", []string{"--announce", "203.0.113.7:4001"},
			`invalid --announce value "203.0.113.7:4001": not a multiaddr (failed to parse multiaddr "203.0.113.7:4001": must begin with /)`},
		{"announce without port", []string{"--announce", "/ip4/203.0.113.7"},
			`invalid --announce value "/ip4/203.0.113.7": want a TCP (/ip4/ADDR/tcp/PORT) or QUIC (/ip4/ADDR/udp/PORT/quic-v1) address`},
		{"announce with peer ID", []string{"--announce", "/ip4/203.0.113.7/tcp/4001/p2p/" + relayPeer},
			`invalid --announce value "/ip4/203.0.113.7/tcp/4001/p2p/` + relayPeer + `": want a TCP (/ip4/ADDR/tcp/PORT) or QUIC (/ip4/ADDR/udp/PORT/quic-v1) address`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repoDir := t.TempDir()
			code, _, errs := runCLI(append([]string{"daemon", "--repo", repoDir}, tt.args...)...)
			want := "p2pd daemon: " + tt.want + "\n"
			if code != exitUsage || !strings.HasPrefix(errs, want) {
				t.Fatalf("exit %d, stderr %q; want exit %d, stderr starting %q", code, errs, exitUsage, want)
			}
		})
	}
}

// TestNATConfigErrorsNameTheFile checks that a bad value from config.json
// is reported against the file, and that good values pass.
func TestNATConfigErrorsNameTheFile(t *testing.T) {
	cfg := repo.DefaultConfig()
	cfg.Reachability = "never"
	_, err := daemonOptions(cfg, func(string) bool { return false }, "/r/config.json")
	want := `invalid "reachability" in /r/config.json value "never": want auto, public or private`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}

	cfg = repo.DefaultConfig()
	zero := int64(0)
	cfg.Relays = []string{
		"/ip4/11.0.0.10/tcp/4001/p2p/" + relayPeer,
		"/ip4/11.0.0.10/udp/4001/quic-v1/p2p/" + relayPeer,
	}
	cfg.Reachability = "private"
	cfg.RelayService = true
	cfg.RelayLimitData = &zero
	cfg.RelayLimitDuration = "0s"
	cfg.RelayAllowPeers = []string{relayPeer}
	cfg.Announce = []string{"/ip4/203.0.113.7/udp/4001/quic-v1"}
	if _, err := daemonOptions(cfg, func(string) bool { return false }, "/r/config.json"); err != nil {
		t.Fatal(err)
	}
}

func TestFormatNATEvents(t *testing.T) {
	at := time.Date(2026, 12, 4, 10, 0, 0, 0, time.Local)
	exp := at.Add(time.Hour)
	for _, tt := range []struct {
		ev   api.Event
		want string
	}{
		{api.Event{Time: at, Type: api.EventReachabilityChanged, Reachability: "private"}, "10:00:00 reachability_changed private"},
		{api.Event{Time: at, Type: api.EventRelayReservation, Peer: "R", Relay: &api.RelayReservation{Peer: "R", Active: true, Expires: &exp}},
			"10:00:00 relay_reservation R reserved until 11:00:00"},
		{api.Event{Time: at, Type: api.EventRelayReservation, Peer: "R", Relay: &api.RelayReservation{Peer: "R", Error: "connection to the relay closed"}},
			"10:00:00 relay_reservation R lost: connection to the relay closed"},
		{api.Event{Time: at, Type: api.EventHolePunch, Peer: "P", HolePunch: &api.HolePunch{Kind: "attempt", Attempt: 2}}, "10:00:00 hole_punch P attempt 2"},
		{api.Event{Time: at, Type: api.EventHolePunch, Peer: "P", HolePunch: &api.HolePunch{Kind: "result", Error: "i/o timeout"}},
			"10:00:00 hole_punch P result failed error=i/o timeout"},
		{api.Event{Time: at, Type: api.EventHolePunch, Peer: "P", HolePunch: &api.HolePunch{Kind: "result", Success: true}}, "10:00:00 hole_punch P result ok"},
	} {
		if got := formatEvent(tt.ev); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

// TestRelayLimitFlagWithServiceInConfig: a relay limit flag is accepted
// when config.json (not the command line) turns the relay service on.
func TestRelayLimitFlagWithServiceInConfig(t *testing.T) {
	cfg := repo.DefaultConfig()
	cfg.RelayService = true
	zero := int64(0)
	cfg.RelayLimitData = &zero
	if _, err := daemonOptions(cfg, func(n string) bool { return n == "relay-limit-data" }, "/r/config.json"); err != nil {
		t.Fatal(err)
	}
	cfg.RelayService = false
	_, err := daemonOptions(cfg, func(n string) bool { return n == "relay-limit-data" }, "/r/config.json")
	if err == nil || err.Error() != "--relay-limit-data needs --relay-service" {
		t.Fatalf("got %v", err)
	}
}
