// Package addr parses the addresses people type on p2pd's command line
// into the multiaddrs the daemon and its API speak.
//
// A local TCP address may be written as a port alone (2222 is
// 127.0.0.1:2222), as HOST:PORT (127.0.0.1:2222, localhost:2222,
// 0.0.0.0:2222, db.lan:5432), as [V6]:PORT ([::1]:2222), or as a multiaddr
// (/ip4/127.0.0.1/tcp/2222), which is taken as it is. A local UDP address is
// one of the short forms with "udp:" before it (udp:5353,
// udp:127.0.0.1:5353) or "/udp" after it (5353/udp, 127.0.0.1:5353/udp,
// [::1]:5353/udp), or a /udp/ multiaddr. A peer may be written
// as a bare peer ID, /p2p/ID or ADDR/p2p/ID; a rendezvous name as @NAME.
// Output is always the multiaddr form.
package addr

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// LocalForms describes the forms Local accepts, for error messages.
const LocalForms = "PORT, HOST:PORT, [IPv6]:PORT or a multiaddr like /ip4/127.0.0.1/tcp/2222 (UDP: udp:PORT or HOST:PORT/udp)"

// DefaultHost is the host of an address given as a port alone.
const DefaultHost = "127.0.0.1"

// SyntaxError is the error of Local: the text is none of the forms it
// knows. Its message says what is wrong without repeating the input.
type SyntaxError struct{ Msg string }

func (e *SyntaxError) Error() string { return e.Msg }

func syntaxf(format string, args ...any) error {
	return &SyntaxError{Msg: fmt.Sprintf(format, args...)}
}

// Local parses a local TCP or UDP address in any of the forms of the
// package doc and returns its multiaddr. A multiaddr (anything starting with "/") is
// only checked to parse; the caller checks what it needs of it.
func Local(s string) (ma.Multiaddr, error) {
	if s == "" {
		return nil, syntaxf("empty; want %s", LocalForms)
	}
	if strings.HasPrefix(s, "/") {
		m, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, syntaxf("not a multiaddr (%v)", err)
		}
		return m, nil
	}
	if rest, ok := strings.CutPrefix(s, udpPrefix); ok {
		return hostPort(rest, "udp")
	}
	if rest, ok := strings.CutSuffix(s, udpSuffix); ok {
		return hostPort(rest, "udp")
	}
	return hostPort(s, "tcp")
}

// The marks of a short UDP address: udp:5353, 127.0.0.1:5353/udp.
const (
	udpPrefix = "udp:"
	udpSuffix = "/udp"
)

// hostPort parses PORT, HOST:PORT or [V6]:PORT into /ip4|ip6|dns/HOST/PROTO/PORT.
func hostPort(s, proto string) (ma.Multiaddr, error) {
	host, port := DefaultHost, s
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		host, port = s[:i], s[i+1:]
		switch {
		case strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]"):
			host = host[1 : len(host)-1]
			if ip, err := netip.ParseAddr(host); err != nil || !ip.Is6() {
				return nil, syntaxf("%q is not an IPv6 address; want %s", host, LocalForms)
			}
		case strings.Contains(host, ":"):
			return nil, syntaxf("an IPv6 address needs brackets, as in [::1]:2222")
		case host == "":
			return nil, syntaxf("the host before %q is missing; want %s", ":"+port, LocalForms)
		}
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		if _, nerr := strconv.ParseUint(port, 10, 64); nerr == nil {
			return nil, syntaxf("port %s is out of range (0-65535)", port)
		}
		return nil, syntaxf("%q is not a port number; want %s", port, LocalForms)
	}
	var hostPart string
	if host == "localhost" {
		host = DefaultHost
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return nil, syntaxf("an IPv6 zone (%%%s) cannot be given this way; use a multiaddr like /ip6zone/%s/ip6/...", ip.Zone(), ip.Zone())
		}
		if ip.Is4() || ip.Is4In6() {
			hostPart = "/ip4/" + ip.Unmap().String()
		} else {
			hostPart = "/ip6/" + ip.String()
		}
	} else {
		if !validHostname(host) {
			return nil, syntaxf("%q is not an IP address or host name; want %s", host, LocalForms)
		}
		hostPart = "/dns/" + host
	}
	m, err := ma.NewMultiaddr(hostPart + "/" + proto + "/" + strconv.FormatUint(n, 10))
	if err != nil {
		return nil, syntaxf("%v", err)
	}
	return m, nil
}

// validHostname reports whether s looks like a DNS name: dot-separated
// labels of letters, digits, '-' and '_'.
func validHostname(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_'
			if !ok {
				return false
			}
		}
	}
	return true
}

// PeerIDHint is appended to a malformed peer ID's error.
const PeerIDHint = "(peer IDs look like 12D3KooW... or Qm...)"

// ErrNotPeerID is wrapped by the errors of PeerID and Peer for a malformed
// peer ID.
var ErrNotPeerID = errors.New("not a peer ID")

// PeerID parses a peer ID. A malformed one gets an error that says what a
// peer ID looks like rather than the multihash decoder's words.
func PeerID(s string) (peer.ID, error) {
	id, err := peer.Decode(s)
	if err != nil || !wellFormed(id) {
		return "", fmt.Errorf("%w: %q %s", ErrNotPeerID, s, PeerIDHint)
	}
	return id, nil
}

// wellFormed reports whether id is an ID a node can have: an embedded
// public key that parses (12D3KooW...), or a SHA2-256 hash of one (Qm...).
// peer.Decode alone takes a truncated ID such as "12D3KooWabc".
func wellFormed(id peer.ID) bool {
	_, err := id.ExtractPublicKey()
	if err == nil {
		return true
	}
	const sha256Code, sha256Len = 0x12, 32
	return errors.Is(err, peer.ErrNoPublicKey) && len(id) == 2+sha256Len && id[0] == sha256Code && id[1] == sha256Len
}

// Peer parses a peer as typed: a bare peer ID, /p2p/ID, or ADDR/p2p/ID.
// It returns the multiaddr form (/p2p/ID for a bare ID) and the peer.
func Peer(s string) (ma.Multiaddr, *peer.AddrInfo, error) {
	if !strings.HasPrefix(s, "/") {
		id, err := PeerID(s)
		if err != nil {
			return nil, nil, err
		}
		return P2P(id), &peer.AddrInfo{ID: id}, nil
	}
	m, err := ma.NewMultiaddr(s)
	if err != nil {
		if strings.Contains(s, "/p2p/") || strings.Contains(s, "/ipfs/") {
			// The commonest cause: a truncated or mistyped ID.
			last := s[strings.LastIndexByte(s, '/')+1:]
			if _, perr := PeerID(last); perr != nil {
				return nil, nil, perr
			}
		}
		return nil, nil, fmt.Errorf("not a multiaddr (%v)", err)
	}
	ai, err := peer.AddrInfoFromP2pAddr(m)
	if err != nil {
		return nil, nil, errors.New("want a peer ID, /p2p/<peer id> or a multiaddr ending in /p2p/<peer id>")
	}
	return m, ai, nil
}

// P2P is the multiaddr /p2p/ID.
func P2P(id peer.ID) ma.Multiaddr {
	c, err := ma.NewComponent("p2p", id.String())
	if err != nil {
		return nil // a decoded peer.ID always encodes
	}
	return c.Multiaddr()
}

// RendezvousPrefix marks a target that names a rendezvous instead of a peer.
const RendezvousPrefix = "@"

// Rendezvous returns NAME for a target written @NAME.
func Rendezvous(s string) (name string, ok bool) {
	name, ok = strings.CutPrefix(s, RendezvousPrefix)
	return name, ok && name != ""
}
