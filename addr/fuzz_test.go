package addr

import (
	"testing"

	ma "github.com/multiformats/go-multiaddr"
)

// FuzzAddresses feeds what a user might type to the address and peer
// parsers of the CLI: nothing panics; a local address comes back as a
// multiaddr that parses again to the same bytes; a peer ID that parses
// prints back to itself; a peer address carries the peer it names.
func FuzzAddresses(f *testing.F) {
	for _, s := range []string{
		"2222", "127.0.0.1:2222", "[::1]:2222", "localhost:80", "udp:53", "udp:127.0.0.1:53", "53/udp", "[::1]:53/udp",
		"/ip4/127.0.0.1/tcp/2222", "/unix/tmp/a.sock", "0", "65536", "-1", ":", "[::1", "host:port",
		"12D3KooWAEYtYAwFkN95p97zyuV2QZWDUnuY2fcbvMDtX7C9bUqF", "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N", "12D3KooWabc",
		"/p2p/12D3KooWAEYtYAwFkN95p97zyuV2QZWDUnuY2fcbvMDtX7C9bUqF",
		"/ip4/1.2.3.4/tcp/4001/p2p/12D3KooWAEYtYAwFkN95p97zyuV2QZWDUnuY2fcbvMDtX7C9bUqF",
		"/ipfs/12D3KooWabc", "@team", "@", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if m, err := Local(s); err == nil {
			again, err := ma.NewMultiaddr(m.String())
			if err != nil || !again.Equal(m) {
				t.Fatalf("Local(%q) = %q, which does not parse back (%v)", s, m, err)
			}
		}
		if id, err := PeerID(s); err == nil {
			back, err := PeerID(id.String())
			if err != nil || back != id {
				t.Fatalf("PeerID(%q) = %s, which does not parse back (%v)", s, id, err)
			}
		}
		if m, ai, err := Peer(s); err == nil {
			if ai == nil || ai.ID == "" || len(m) == 0 {
				t.Fatalf("Peer(%q) = %q %v: no peer", s, m, ai)
			}
		}
		_, _ = Rendezvous(s)
	})
}
