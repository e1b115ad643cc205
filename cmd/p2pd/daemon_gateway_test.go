package main

import (
	"strings"
	"testing"

	"github.com/p2pd/p2pd/repo"
)

// TestGatewayFlagErrors checks the gateway flags' bad values: each is
// refused before the daemon touches the disk, with exit 2 and a message
// that names the flag, the value and what was expected.
func TestGatewayFlagErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"not an address", []string{"--gateway", "web"},
			`invalid --gateway value "web": `},
		{"not loopback", []string{"--gateway", "0.0.0.0:8080"},
			`invalid --gateway value "0.0.0.0:8080": gateway address /ip4/0.0.0.0/tcp/8080 is not a loopback address, so anyone who can reach it could reach this node's peers through it (--gateway-allow-remote allows it)`},
		{"not TCP", []string{"--gateway", "/ip4/127.0.0.1/udp/8080"},
			`invalid --gateway value "/ip4/127.0.0.1/udp/8080": gateway address /ip4/127.0.0.1/udp/8080: want /ip4/HOST/tcp/PORT or /ip6/HOST/tcp/PORT`},
		{"zero timeout", []string{"--gateway", "8080", "--gateway-timeout", "0s"},
			`invalid --gateway-timeout value "0s": want a positive duration like 1m`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errs := runCLI(append([]string{"daemon", "--repo", t.TempDir()}, tt.args...)...)
			want := "p2pd daemon: " + tt.want
			if code != exitUsage || !strings.HasPrefix(errs, want) {
				t.Fatalf("exit %d, stderr %q; want exit %d, stderr starting %q", code, errs, exitUsage, want)
			}
		})
	}
}

// TestGatewayConfig checks the gateway's config.json fields: off when
// empty, an error naming the file, and a remote address with its consent.
func TestGatewayConfig(t *testing.T) {
	none := func(string) bool { return false }
	cfg := repo.DefaultConfig()
	base, err := daemonOptions(cfg, none, "/r/config.json")
	if err != nil {
		t.Fatal(err)
	}

	cfg.Gateway = "0.0.0.0:8080"
	_, err = daemonOptions(cfg, none, "/r/config.json")
	want := `invalid "gateway" in /r/config.json value "0.0.0.0:8080": gateway address /ip4/0.0.0.0/tcp/8080 is not a loopback address`
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("got %v, want an error starting %q", err, want)
	}

	cfg.GatewayAllowRemote = true
	cfg.GatewayTimeout = "90s"
	opts, err := daemonOptions(cfg, none, "/r/config.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(opts) != len(base)+1 {
		t.Fatalf("%d daemon options with a gateway, %d without; want one more", len(opts), len(base))
	}
}
