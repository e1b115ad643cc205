package listeners

import (
	"errors"
	"strings"
)

// Errors returned by the Registry. Callers test for them with errors.Is; some
// are returned wrapped with the offending value. The first five are returned
// bare: their texts are what the user sees, worded as SPEC.md and kubo's
// `ipfs p2p` word them.
var (
	// ErrProtocolNamespace is returned by Forward and Listen when the
	// protocol does not start with "/x/" and AllowCustomProtocol is false.
	ErrProtocolNamespace = errors.New("protocol name must be within '/x/' namespace")

	// ErrListenerExists is returned by Listen when the registry already
	// holds a listen entry for the protocol (one listen per protocol).
	ErrListenerExists = errors.New("listener already registered")

	// ErrPortZero is returned by Listen when the TCP target has port 0: a
	// listen must dial a real service.
	ErrPortZero = errors.New("port can not be 0")

	// ErrNoMatch is returned by Close when the Match sets no filter at all.
	ErrNoMatch = errors.New("no matching options given")

	// ErrAllWithFilter is returned by Close when Match.All is combined with
	// another filter.
	ErrAllWithFilter = errors.New("can't combine --all with other matching options")

	// ErrProtocolServed is returned by Forward and Listen when the node
	// itself already serves the protocol (a handler set by anything other
	// than this registry, such as identify, ping or the DHT).
	ErrProtocolServed = errors.New("protocol is already served by this node")

	// ErrEmptyProtocol is returned by Forward and Listen when no protocol is
	// given.
	ErrEmptyProtocol = errors.New("protocol is empty")

	// ErrInvalidProtocol is returned (wrapped, naming the rule broken) by
	// Forward, Listen and ValidateProtocol for a protocol name libp2p cannot
	// negotiate or `p2pd ls` cannot show on one line.
	ErrInvalidProtocol = errors.New("invalid protocol name")

	// ErrInvalidTarget is returned by Forward when the target does not end
	// with /p2p/<peer id>, and by Listen when the target is not a TCP or unix
	// address.
	ErrInvalidTarget = errors.New("invalid target address")

	// ErrInvalidListen is returned by Forward when the listen address is not
	// a TCP or unix address.
	ErrInvalidListen = errors.New("invalid listen address")

	// ErrSelfTarget is returned by Forward when the target is this node
	// itself: a libp2p host can not open a stream to itself.
	ErrSelfTarget = errors.New("can not forward to this node itself")

	// ErrNoAddresses is recorded (wrapped) as a forward's last error when the
	// target peer has no known address and no PeerFinder is configured or
	// the PeerFinder found none.
	ErrNoAddresses = errors.New("no known addresses for peer")

	// ErrTransportMismatch is recorded (wrapped) as a forward's last error
	// when the peer serves the protocol over the other transport: a TCP
	// forward to a UDP listen, or a UDP forward to a TCP listen.
	ErrTransportMismatch = errors.New("transport mismatch")

	// ErrQUICStreamLimit is recorded (wrapped, together with the timeout
	// it explains) as a forward's last error when opening its stream ran
	// out of time because every connection to the peer is QUIC and already
	// carries as many streams as go-libp2p's QUIC allows (256).
	ErrQUICStreamLimit = errors.New("QUIC stream limit reached")

	// ErrReportPeerIDUDP is returned by Listen when ReportPeerID is asked
	// for a UDP target: a datagram service has no byte stream to prefix.
	ErrReportPeerIDUDP = errors.New("--report-peer-id is not supported for a UDP target")

	// ErrInvalidPick is returned by Forward and ParsePick for an unknown
	// Pick, or a Pick given with a target that is one peer.
	ErrInvalidPick = errors.New("invalid --pick value")

	// ErrClosed is returned by Forward and Listen after Shutdown.
	ErrClosed = errors.New("listener registry is shut down")
)

// NoPeerError is recorded as a rendezvous forward's last error when no
// peer advertising the name took a connection.
type NoPeerError struct {
	Rendezvous string
	Protocol   string
	// Tried says why each peer tried failed; empty when none was known.
	Tried []string
}

func (e *NoPeerError) Error() string {
	msg := "no peer advertising " + e.Rendezvous + " serves " + e.Protocol + " yet"
	if len(e.Tried) > 0 {
		msg += " (tried " + strings.Join(e.Tried, "; ") + ")"
	}
	return msg
}
