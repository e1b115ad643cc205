package listeners

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
)

// FuzzValidateProtocol: what ValidateProtocol accepts is at most 1,024
// bytes of UTF-8 with no white space or control character, so it fits on
// one line of `p2pd ls` and can be negotiated; what it refuses names a rule.
func FuzzValidateProtocol(f *testing.F) {
	for _, s := range []string{"/x/ssh", "/x/a\n/x/b", "/x/a b", "/x/\x1b[31m", "/x/caf\xe9", "/x/\u2028", "/x/" + strings.Repeat("a", 1021), "/x/" + strings.Repeat("a", 1022), ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidateProtocol(protocol.ID(s))
		if err != nil {
			if err.Error() == "" {
				t.Fatal("refusal without a message")
			}
			return
		}
		if s == "" || len(s) > MaxProtocolLen || !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool {
			return unicode.IsSpace(r) || unicode.IsControl(r) || !unicode.IsPrint(r)
		}) >= 0 {
			t.Fatalf("accepted %q", s)
		}
	})
}

// FuzzListenerAddresses feeds strings through the parsing a listen or
// forward request's addresses go through: the multiaddr parser, then the
// registry's target and listen checks. Nothing panics, and a multiaddr that
// parses prints back to a string that parses to the same bytes.
func FuzzListenerAddresses(f *testing.F) {
	for _, s := range []string{
		"/ip4/127.0.0.1/tcp/2222",
		"/ip6/::1/tcp/0",
		"/unix/tmp/a.sock",
		"/ip4/127.0.0.1/udp/53",
		"/p2p/12D3KooWAEYtYAwFkN95p97zyuV2QZWDUnuY2fcbvMDtX7C9bUqF",
		"/ip4/1.2.3.4/tcp/4001/p2p/12D3KooWAEYtYAwFkN95p97zyuV2QZWDUnuY2fcbvMDtX7C9bUqF",
		"/p2p/12D3KooWAEYtYAwFkN95p97zyuV2QZWDUnuY2fcbvMDtX7C9bUqF/p2p/12D3KooWAEYtYAwFkN95p97zyuV2QZWDUnuY2fcbvMDtX7C9bUqF",
		"/ip4/127.0.0.1/udp/0/quic-v1",
		"/dns4/localhost/tcp/80",
		"/ip4/999.0.0.1/tcp/1",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ma.NewMultiaddr(s)
		if err != nil {
			return
		}
		again, err := ma.NewMultiaddr(m.String())
		if err != nil {
			t.Fatalf("%q parsed, but its string %q does not: %v", s, m.String(), err)
		}
		if !again.Equal(m) {
			t.Fatalf("%q -> %q -> %q: not the same address", s, m, again)
		}
		_, _, _ = splitTarget(m)
		_, _, _ = streamDialArgs(m)
	})
}
