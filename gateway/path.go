package gateway

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/p2pd/p2pd/discovery"
	"github.com/p2pd/p2pd/listeners"
)

// HTTPProtocol is the protocol of URLs of the short form /p2p/PEER/http/PATH.
const HTTPProtocol protocol.ID = "/http"

// target is where one gateway request goes, read from its path.
type target struct {
	peer  peer.ID
	name  string // a rendezvous name (PEER given as @NAME), instead of peer
	proto protocol.ID
	// prefix is the escaped path up to and including the /http segment:
	// what the gateway took off the front of the request's path.
	prefix string
	// rest is the escaped path sent to the peer, from its leading slash.
	rest string
}

// errBadPath is wrapped by every error of parsePath.
var errBadPath = errors.New("malformed gateway path")

// usage is the shape of a gateway URL path, for error messages.
const usage = "want /p2p/PEER/http/PATH or /p2p/PEER/x/PROTOCOL/http/PATH"

// parsePath reads a gateway request's escaped path:
//
//	/p2p/PEER/http/PATH             protocol /http
//	/p2p/PEER/x/PROTOCOL/http/PATH  protocol /x/PROTOCOL
//
// PROTOCOL is one or more segments: it ends at the first segment "http"
// after it (so /x/a/b/http/c is protocol /x/a/b and path /c). PEER is a
// peer ID, or @NAME for a peer advertising rendezvous NAME. PATH may be
// empty, which means "/".
func parsePath(escaped string) (target, error) {
	rest, ok := strings.CutPrefix(escaped, "/p2p/")
	if !ok {
		return target{}, fmt.Errorf("%w %q: %s", errBadPath, escaped, usage)
	}
	peerSeg, rest, _ := strings.Cut(rest, "/")
	var t target
	p, err := url.PathUnescape(peerSeg)
	if err != nil {
		return target{}, fmt.Errorf("%w %q: peer: %w", errBadPath, escaped, err)
	}
	if name, ok := strings.CutPrefix(p, "@"); ok {
		if name == "" {
			return target{}, fmt.Errorf("%w %q: empty rendezvous name after @", errBadPath, escaped)
		}
		if err := discovery.ValidateRendezvous(name); err != nil {
			return target{}, fmt.Errorf("%w %q: @NAME: %w", errBadPath, escaped, err)
		}
		t.name = name
	} else if t.peer, err = peer.Decode(p); err != nil {
		return target{}, fmt.Errorf("%w %q: invalid peer ID %q: %w", errBadPath, escaped, p, err)
	}

	segs := strings.Split(rest, "/")
	var end int // index of the "http" segment
	switch {
	case segs[0] == "http":
		t.proto = HTTPProtocol
	case segs[0] == "x":
		end = 2
		for end < len(segs) && segs[end] != "http" {
			end++
		}
		if len(segs) < 2 || segs[1] == "" {
			return target{}, fmt.Errorf("%w %q: empty protocol name after /x/", errBadPath, escaped)
		}
		if end >= len(segs) {
			return target{}, fmt.Errorf("%w %q: no /http segment after the protocol: %s", errBadPath, escaped, usage)
		}
		proto, err := url.PathUnescape("/" + strings.Join(segs[:end], "/"))
		if err != nil {
			return target{}, fmt.Errorf("%w %q: protocol: %w", errBadPath, escaped, err)
		}
		t.proto = protocol.ID(proto)
		if err := listeners.ValidateProtocol(t.proto); err != nil {
			return target{}, fmt.Errorf("%w %q: %w", errBadPath, escaped, err)
		}
	default:
		return target{}, fmt.Errorf("%w %q: %s", errBadPath, escaped, usage)
	}
	t.prefix = "/p2p/" + peerSeg + "/" + strings.Join(segs[:end+1], "/")
	t.rest = "/" + strings.Join(segs[end+1:], "/")
	return t, nil
}

// p2pAddr is /p2p/PEER, the target recorded for the target's streams.
func p2pAddr(id peer.ID) ma.Multiaddr {
	c, err := ma.NewComponent("p2p", id.String())
	if err != nil { // a decoded peer ID always encodes
		return nil
	}
	return c.Multiaddr()
}
