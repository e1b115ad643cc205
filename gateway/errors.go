package gateway

import (
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
	msmux "github.com/multiformats/go-multistream"

	"github.com/p2pd/p2pd/listeners"
)

// proxyError answers a request that the reverse proxy could not carry
// through, in the gateway's words.
func (g *Gateway) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	ex := exchangeFrom(r.Context())
	if ex == nil { // not a gateway request: cannot happen
		g.fail(w, r, nil, http.StatusBadGateway, err.Error())
		return
	}
	if r.Context().Err() != nil {
		// The client went away (or the gateway is closing): nobody reads
		// an answer.
		log.Debugw("gateway: request abandoned", "peer", ex.target.peer, "protocol", ex.target.proto, "err", err)
		return
	}
	status, msg := g.explain(ex, err)
	t := ex.target
	if sc := ex.conn.Load(); sc != nil {
		t = sc.target
	}
	g.fail(w, r, &t, status, msg)
}

// explain turns a failed exchange into a status and a message.
func (g *Gateway) explain(ex *exchange, err error) (int, string) {
	t := ex.target
	var oe *openError
	if errors.As(err, &oe) {
		t = oe.target
		switch {
		case isNotServedByName(oe.err):
			return http.StatusNotFound, oe.err.Error()
		case t.name != "" && oe.err != nil && !oe.timedOut:
			return http.StatusBadGateway, oe.err.Error()
		case notServed(oe.err):
			return http.StatusNotFound, fmt.Sprintf("peer %s does not serve %s", t.peer, t.proto)
		case errors.Is(oe.err, listeners.ErrSelfTarget):
			return http.StatusBadRequest, fmt.Sprintf("peer %s is this node itself", t.peer)
		case oe.timedOut:
			return http.StatusGatewayTimeout, fmt.Sprintf("peer %s not reached within %s: %v", peerName(t), g.cfg.timeout, oe.err)
		}
		return http.StatusBadGateway, fmt.Sprintf("cannot reach peer %s: %v", peerName(t), oe.err)
	}
	if sc := ex.conn.Load(); sc != nil {
		t = sc.target
		if serr := sc.s.failure(); serr != nil {
			if t.name != "" && g.names != nil {
				g.names.failed(nameKey{name: t.name, proto: t.proto}, t.peer)
			}
			if notServed(serr) {
				return http.StatusNotFound, fmt.Sprintf("peer %s does not serve %s", t.peer, t.proto)
			}
			var se *network.StreamError
			if errors.As(serr, &se) && se.Remote {
				switch se.ErrorCode {
				case listeners.CodeNotAllowed, network.StreamGated: // StreamGated: p2pd before the codes
					return http.StatusForbidden, fmt.Sprintf("peer %s refused this node for %s: not in its listen's --allow-peer list", t.peer, t.proto)
				case listeners.CodeTargetUnreachable:
					return http.StatusBadGateway, fmt.Sprintf("peer %s serves %s, but its service there is unreachable (the target of its `p2pd listen` refused the connection)", t.peer, t.proto)
				case listeners.CodeListenerClosing:
					return http.StatusBadGateway, fmt.Sprintf("peer %s is closing its listener for %s", t.peer, t.proto)
				}
			}
			return http.StatusBadGateway, fmt.Sprintf("peer %s reset the stream before its service for %s answered: %v", t.peer, t.proto, serr)
		}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return http.StatusGatewayTimeout, fmt.Sprintf("the service of peer %s for %s did not answer within %s", t.peer, t.proto, g.cfg.timeout)
	}
	return http.StatusBadGateway, fmt.Sprintf("the service of peer %s for %s closed the connection without answering: %v", t.peer, t.proto, err)
}

// notServed reports whether err says that the peer does not serve the
// protocol asked for.
func notServed(err error) bool {
	return errors.Is(err, msmux.ErrNotSupported[protocol.ID]{})
}

// peerName is how messages name the target's peer.
func peerName(t target) string {
	if t.peer == "" {
		return "@" + t.name
	}
	return t.peer.String()
}

// fail answers a request with status and the gateway's message, and logs
// it; t is the request's target, if it has one.
func (g *Gateway) fail(w http.ResponseWriter, r *http.Request, t *target, status int, msg string) {
	kv := []any{"status", status, "method", r.Method, "client", r.RemoteAddr, "err", msg}
	if t != nil {
		// r may be the request to the peer: name the gateway's path.
		kv = append(kv, "path", t.prefix+t.rest, "peer", peerName(*t), "protocol", t.proto)
	} else {
		kv = append(kv, "path", r.URL.Path)
	}
	if status >= 500 {
		log.Warnw("gateway: request failed", kv...)
	} else {
		log.Infow("gateway: request refused", kv...)
	}
	http.Error(w, "p2pd gateway: "+msg, status)
}
