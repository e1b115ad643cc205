package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestShortForms runs each short form where the CLI takes it, against an
// API address where nothing answers: each must pass argument checking and
// fail only for the missing daemon (exit 1).
func TestShortForms(t *testing.T) {
	dead := "/unix" + filepath.Join(t.TempDir(), "nobody.sock")
	repo := t.TempDir()
	p := examplePeer
	tests := [][]string{
		{"listen", "/x/ssh", "22"},
		{"listen", "/x/ssh", "127.0.0.1:22"},
		{"listen", "/x/ssh", "localhost:22"},
		{"listen", "/x/ssh", "[::1]:22"},
		{"listen", "/x/db", "db.lan:5432"},
		{"listen", "/x/ssh", "/ip4/127.0.0.1/tcp/22"},
		{"forward", "/x/ssh", "2222", p},
		{"forward", "/x/ssh", "0", "/p2p/" + p},
		{"forward", "/x/ssh", "0.0.0.0:2222", "/ip4/192.0.2.7/tcp/4001/p2p/" + p},
		{"forward", "/x/ssh", "[::1]:2222", "@my-team"},
		{"forward", "/x/ssh", "localhost:2222", "@my-team", "--pick", "round-robin"},
		{"forward", "/x/ssh", "2222", "@my-team", "--pick", "failover"},
		{"connect", p},
		{"connect", "/ip4/127.0.0.1/tcp/4001/p2p/" + p},
		{"close", "-l", "2222"},
		{"close", "-l", "[::1]:2222"},
		{"close", "-t", p},
		{"close", "-t", "@my-team"},
		{"close", "-t", "127.0.0.1:22"},
		{"listen", "/x/ssh", "22", "--allow-peer", p},
	}
	for _, args := range tests {
		code, _, errs := runCLI(append(args, "--api", dead, "--repo", repo)...)
		if code != exitError || strings.Contains(errs, "invalid") {
			t.Errorf("%q: exit %d, stderr %q; want exit 1 for the missing daemon", args, code, errs)
		}
	}
	// --api itself takes the short forms: these fail to connect, not to parse.
	for _, api := range []string{"5999", "127.0.0.1:5999", "[::1]:5999", "localhost:5999"} {
		code, _, errs := runCLI("ls", "--api", api, "--repo", repo)
		if code != exitError {
			t.Errorf("ls --api %s: exit %d, stderr %q; want 1", api, code, errs)
		}
	}
}

// TestErrorTexts checks the exact wording of the argument errors.
func TestErrorTexts(t *testing.T) {
	hint := "(peer IDs look like 12D3KooW... or Qm...)"
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"forward", "/x/ssh", "2222", "12D3KooWnope"}, `p2pd forward: invalid TARGET: not a peer ID: "12D3KooWnope" ` + hint},
		{[]string{"forward", "/x/ssh", "2222", "/p2p/Qmx"}, `p2pd forward: invalid TARGET: not a peer ID: "Qmx" ` + hint},
		{[]string{"forward", "/x/ssh", "2222", "/ip4/127.0.0.1/tcp/1"}, `p2pd forward: invalid TARGET value "/ip4/127.0.0.1/tcp/1": want a peer ID, /p2p/<peer id> or a multiaddr ending in /p2p/<peer id>`},
		{[]string{"forward", "/x/ssh", "2222", "@"}, `p2pd forward: invalid TARGET value "@": want @NAME, the rendezvous string peers advertise`},
		{[]string{"forward", "/x/ssh", "70000", examplePeer}, `p2pd forward: invalid LISTEN value "70000": port 70000 is out of range (0-65535)`},
		{[]string{"forward", "/x/ssh", "ssh", examplePeer}, `p2pd forward: invalid LISTEN value "ssh": "ssh" is not a port number; want PORT, HOST:PORT, [IPv6]:PORT or a multiaddr like /ip4/127.0.0.1/tcp/2222`},
		{[]string{"forward", "/x/ssh", "::1:22", examplePeer}, `p2pd forward: invalid LISTEN value "::1:22": an IPv6 address needs brackets, as in [::1]:2222`},
		{[]string{"forward", "/x/ssh", "2222", "@x", "--pick", "random"}, `p2pd forward: invalid --pick value "random": want failover or round-robin`},
		{[]string{"forward", "/x/ssh", "2222", examplePeer, "--pick", "round-robin"}, `p2pd forward: --pick needs a rendezvous TARGET (@NAME): a single peer has nobody to pick from`},
		{[]string{"listen", "/x/ssh", ":22"}, `p2pd listen: invalid TARGET value ":22": the host before ":22" is missing`},
		{[]string{"listen", "/x/ssh", "22", "--allow-peer", "bob"}, `p2pd listen: invalid --allow-peer: not a peer ID: "bob" ` + hint},
		{[]string{"connect", "xyz"}, `p2pd connect: invalid MULTIADDR: not a peer ID: "xyz" ` + hint},
		{[]string{"close", "-l", "x:y"}, `p2pd close: invalid -l value "x:y": "y" is not a port number`},
		{[]string{"close", "-t", "x:y"}, `p2pd close: invalid -t value "x:y": want a forward's peer (ID, /p2p/ID or @NAME) or a listen's target address`},
		{[]string{"ls", "--api", "x:y"}, `p2pd ls: invalid --api value "x:y": want PORT, HOST:PORT, /ip4/HOST/tcp/PORT or /unix/PATH`},
		{[]string{"daemon", "--api", "99999"}, `p2pd daemon: invalid --api value "99999": port 99999 is out of range (0-65535)`},
	}
	for _, tt := range tests {
		code, _, errs := runCLI(tt.args...)
		if code != exitUsage || !strings.HasPrefix(errs, tt.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 and %q", tt.args, code, errs, tt.want)
		}
		if strings.Contains(errs, "multihash") || strings.Contains(errs, "varint") {
			t.Errorf("%q: %q speaks of encoding internals", tt.args, errs)
		}
	}
}
