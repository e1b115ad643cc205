package addr

import (
	"errors"
	"strings"
	"testing"
)

const examplePeer = "12D3KooWAEYtYAwFkN95p97zyuV2QZWDUnuY2fcbvMDtX7C9bUqF"

func TestLocal(t *testing.T) {
	tests := []struct{ in, want string }{
		{"2222", "/ip4/127.0.0.1/tcp/2222"},
		{"0", "/ip4/127.0.0.1/tcp/0"},
		{"65535", "/ip4/127.0.0.1/tcp/65535"},
		{"127.0.0.1:2222", "/ip4/127.0.0.1/tcp/2222"},
		{"localhost:2222", "/ip4/127.0.0.1/tcp/2222"},
		{"0.0.0.0:2222", "/ip4/0.0.0.0/tcp/2222"},
		{"192.0.2.7:80", "/ip4/192.0.2.7/tcp/80"},
		{"[::1]:2222", "/ip6/::1/tcp/2222"},
		{"[::]:0", "/ip6/::/tcp/0"},
		{"[::ffff:127.0.0.1]:22", "/ip4/127.0.0.1/tcp/22"},
		{"db.lan:5432", "/dns/db.lan/tcp/5432"},
		{"/ip4/127.0.0.1/tcp/2222", "/ip4/127.0.0.1/tcp/2222"},
		{"/ip6/::1/tcp/22", "/ip6/::1/tcp/22"},
		{"/unix/tmp/p2pd.sock", "/unix/tmp/p2pd.sock"},
		{"udp:5353", "/ip4/127.0.0.1/udp/5353"},
		{"udp:0.0.0.0:53", "/ip4/0.0.0.0/udp/53"},
		{"udp:[::1]:53", "/ip6/::1/udp/53"},
		{"5353/udp", "/ip4/127.0.0.1/udp/5353"},
		{"127.0.0.1:5353/udp", "/ip4/127.0.0.1/udp/5353"},
		{"localhost:51820/udp", "/ip4/127.0.0.1/udp/51820"},
		{"[::1]:5353/udp", "/ip6/::1/udp/5353"},
		{"dns.lan:53/udp", "/dns/dns.lan/udp/53"},
		{"/ip4/127.0.0.1/udp/53", "/ip4/127.0.0.1/udp/53"},
	}
	for _, tt := range tests {
		m, err := Local(tt.in)
		if err != nil {
			t.Errorf("Local(%q): %v", tt.in, err)
			continue
		}
		if m.String() != tt.want {
			t.Errorf("Local(%q) = %s, want %s", tt.in, m, tt.want)
		}
	}
}

func TestLocalErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "empty; want PORT, HOST:PORT, [IPv6]:PORT or a multiaddr"},
		{"65536", "port 65536 is out of range (0-65535)"},
		{"99999999999999999999999", `"99999999999999999999999" is not a port number`},
		{"-1", `"-1" is not a port number`},
		{"ssh", `"ssh" is not a port number; want PORT, HOST:PORT`},
		{"127.0.0.1:", `"" is not a port number`},
		{":2222", `the host before ":2222" is missing`},
		{"::1:2222", "an IPv6 address needs brackets, as in [::1]:2222"},
		{"[127.0.0.1]:22", `"127.0.0.1" is not an IPv6 address`},
		{"[zz]:22", `"zz" is not an IPv6 address`},
		{"[fe80::1%eth0]:22", "an IPv6 zone (%eth0) cannot be given this way"},
		{"bad host!:22", `"bad host!" is not an IP address or host name`},
		{"-x.lan:22", `"-x.lan" is not an IP address or host name`},
		{"/ip4/1.2.3.4/tcpx/1", "not a multiaddr"},
		{"udp:", "is not a port number"},
		{"udp:dns", `"dns" is not a port number`},
		{"/udp", "not a multiaddr"},
		{"70000/udp", "port 70000 is out of range (0-65535)"},
		{"udp:5353/udp", `"5353/udp" is not a port number`},
	}
	for _, tt := range tests {
		m, err := Local(tt.in)
		if err == nil {
			t.Errorf("Local(%q) = %s, want an error", tt.in, m)
			continue
		}
		var se *SyntaxError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Local(%q): %q, want a SyntaxError with %q", tt.in, err, tt.want)
		}
	}
}

func TestPeer(t *testing.T) {
	tests := []struct{ in, want string }{
		{examplePeer, "/p2p/" + examplePeer},
		{"/p2p/" + examplePeer, "/p2p/" + examplePeer},
		{"/ip4/192.0.2.7/tcp/4001/p2p/" + examplePeer, "/ip4/192.0.2.7/tcp/4001/p2p/" + examplePeer},
		{"QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N", "/p2p/QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"},
	}
	for _, tt := range tests {
		m, ai, err := Peer(tt.in)
		if err != nil {
			t.Errorf("Peer(%q): %v", tt.in, err)
			continue
		}
		if m.String() != tt.want || !strings.HasSuffix(tt.want, ai.ID.String()) {
			t.Errorf("Peer(%q) = %s, %s; want %s", tt.in, m, ai.ID, tt.want)
		}
	}
}

func TestPeerErrors(t *testing.T) {
	hint := "(peer IDs look like 12D3KooW... or Qm...)"
	tests := []struct{ in, want string }{
		{"12D3KooWbroken", `not a peer ID: "12D3KooWbroken" ` + hint},
		{"12D3KooWnope", `not a peer ID: "12D3KooWnope" ` + hint}, // decodes, but is cut short
		{examplePeer[:len(examplePeer)-3], `not a peer ID: "` + examplePeer[:len(examplePeer)-3] + `" ` + hint},
		{"QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx", `not a peer ID: "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx" ` + hint},
		{"nonsense", `not a peer ID: "nonsense" ` + hint},
		{"/p2p/12D3Koo", `not a peer ID: "12D3Koo" ` + hint},
		{"/ip4/1.2.3.4/tcp/1/p2p/xyz", `not a peer ID: "xyz" ` + hint},
		{"/ip4/1.2.3.4/tcp/1", "want a peer ID, /p2p/<peer id> or a multiaddr ending in /p2p/<peer id>"},
		{"/ip4/1.2.3.4/tcpx/1", "not a multiaddr"},
	}
	for _, tt := range tests {
		_, _, err := Peer(tt.in)
		if err == nil || err.Error() != tt.want && !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Peer(%q): %v, want %q", tt.in, err, tt.want)
		}
		if strings.Contains(tt.want, "not a peer ID") && !errors.Is(err, ErrNotPeerID) {
			t.Errorf("Peer(%q): %v does not wrap ErrNotPeerID", tt.in, err)
		}
		if err != nil && strings.Contains(err.Error(), "multihash") {
			t.Errorf("Peer(%q): %v speaks of multihash internals", tt.in, err)
		}
	}
}

func TestRendezvous(t *testing.T) {
	for in, want := range map[string]string{"@my-team": "my-team", "@": "", "my-team": "", "/p2p/x": ""} {
		name, ok := Rendezvous(in)
		if name != want && ok || ok != (want != "") {
			t.Errorf("Rendezvous(%q) = %q, %v; want %q", in, name, ok, want)
		}
	}
}
