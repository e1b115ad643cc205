package listeners

import (
	"errors"
	"fmt"
	"sync"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	msmux "github.com/multiformats/go-multistream"
)

// Stream error codes a listen resets a refused stream with, so that the
// forwarding side can tell its user why. They are p2pd's own (above
// libp2p's 0x1000 range); a peer that does not know them still sees a reset.
const (
	// CodeNotAllowed: the forwarding peer is not in the listen's
	// --allow-peer list.
	CodeNotAllowed network.StreamErrorCode = 0x70320001
	// CodeTargetUnreachable: the listen could not dial its local target.
	CodeTargetUnreachable network.StreamErrorCode = 0x70320002
	// CodeListenerClosing: the listen was being removed.
	CodeListenerClosing network.StreamErrorCode = 0x70320003
)

// RefusedError says why a peer refused a forward's stream.
type RefusedError struct {
	Peer     peer.ID
	Protocol protocol.ID
	Reason   string
	Err      error // the stream error it was told by
}

func (e *RefusedError) Error() string { return fmt.Sprintf("refused by %s: %s", e.Peer, e.Reason) }
func (e *RefusedError) Unwrap() error { return e.Err }

// refusal turns err, met on a stream to p speaking proto, into a
// RefusedError when it is the far side refusing the stream; else nil.
func refusal(p peer.ID, proto protocol.ID, err error) *RefusedError {
	if err == nil {
		return nil
	}
	reason := ""
	var se *network.StreamError
	switch {
	case errors.As(err, &se) && se.Remote:
		switch se.ErrorCode {
		case CodeNotAllowed, network.StreamGated: // StreamGated: p2pd before the codes
			reason = "not in the listener's --allow-peer list"
		case CodeTargetUnreachable:
			reason = fmt.Sprintf("its service behind %s is unreachable (the `p2pd listen` target does not answer)", proto)
		case CodeListenerClosing:
			reason = fmt.Sprintf("its listener for %s is closing", proto)
		}
	case errors.Is(err, msmux.ErrNotSupported[protocol.ID]{}): // the host's lazy streams and ours
		reason = fmt.Sprintf("it does not serve %s (no `p2pd listen %s` there)", proto, proto)
	}
	if reason == "" {
		return nil
	}
	return &RefusedError{Peer: p, Protocol: proto, Reason: reason, Err: err}
}

// refusalWatch passes a stream through and reports, once, the first read
// or write error that is the far side refusing the stream: a listen
// resets a refused stream after the protocol is agreed, so the refusal
// reaches the forward only once its bytes flow.
type refusalWatch struct {
	network.Stream
	peer   peer.ID
	proto  protocol.ID
	once   sync.Once
	report func(*RefusedError)
}

func watchRefusal(s network.Stream, p peer.ID, proto protocol.ID, report func(*RefusedError)) network.Stream {
	return &refusalWatch{Stream: s, peer: p, proto: proto, report: report}
}

func (w *refusalWatch) Read(b []byte) (int, error) {
	n, err := w.Stream.Read(b)
	w.check(err)
	return n, err
}

func (w *refusalWatch) Write(b []byte) (int, error) {
	n, err := w.Stream.Write(b)
	w.check(err)
	return n, err
}

func (w *refusalWatch) check(err error) {
	if err == nil {
		return
	}
	if re := refusal(w.peer, w.proto, err); re != nil {
		w.once.Do(func() { w.report(re) })
	}
}
