package main

import (
	"errors"
	"fmt"
	"strings"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/p2pd/p2pd/client"
)

// The daemon's texts for tunnel errors that have an obvious next step
// (SPEC.md fixes them; the hints come after them).
const (
	msgListenerExists   = "listener already registered"
	msgNamespace        = "protocol name must be within '/x/' namespace"
	msgPortZero         = "port can not be 0"
	msgAddressInUse     = "already in use" // "address ADDR is already in use"
	msgProtocolIsServed = "protocol is already served by this node"
)

// explainTunnel words a listen or forward error with what to do next.
// protocol and listen are the request's (listen is "" for a listen).
func explainTunnel(err error, protocol, listen string) error {
	var ce *client.Error
	if !errors.As(err, &ce) {
		return explain(err)
	}
	msg := ce.Message
	switch {
	case msg == msgListenerExists:
		return fmt.Errorf("%s for %s (close it with `p2pd close -p %s`)", msg, protocol, protocol)
	case strings.HasPrefix(msg, msgNamespace):
		return fmt.Errorf("%s: the protocol must start with /x/ (try %s, or pass --allow-custom-protocol)", msg, suggestX(protocol))
	case msg == msgPortZero:
		return fmt.Errorf("%s (a listen dials a running service: give its port, e.g. 22)", msg)
	case strings.HasPrefix(msg, msgProtocolIsServed):
		return fmt.Errorf("%s (p2pd itself speaks it: pick a name under /x/)", msg)
	case strings.Contains(msg, msgAddressInUse) && listen != "":
		return fmt.Errorf("%s is already in use (pick another, or 0 for any)", portOf(listen))
	}
	return explain(err)
}

// suggestX proposes a /x/ name for a protocol outside /x/: its last
// path element under /x/.
func suggestX(p string) string {
	name := p[strings.LastIndexByte(p, '/')+1:]
	if name == "" {
		name = "ssh"
	}
	return "/x/" + name
}

// portOf names the port of a listen multiaddr for an error: "port 8080".
func portOf(listen string) string {
	m, err := ma.NewMultiaddr(listen)
	if err == nil {
		for _, code := range []int{ma.P_TCP, ma.P_UDP} {
			if p, err := m.ValueForProtocol(code); err == nil {
				return "port " + p
			}
		}
	}
	return listen
}
