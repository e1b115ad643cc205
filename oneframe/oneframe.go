// Package oneframe opens libp2p streams whose protocol proposal travels in
// the same frame as their first data.
//
// go-libp2p's host negotiates a stream's protocol lazily when its peerstore
// says the peer serves it, but its lazy streams send the proposal from a
// goroutine of their own when the first Read comes before the first Write,
// and read the answer in one when the first Write comes first: one more
// goroutine to schedule on the way of the first bytes. A stream opened with
// Open does both in its caller's goroutine and sends the proposal in the
// same yamux frame as the first data: on a forward, a new connection's
// first bytes reach the peer with one frame less. It is an explicit choice
// of whoever opens the stream (package listeners: WithOneFrameProposal),
// and the stream behaves as any other to whoever reads and writes it.
package oneframe

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	logging "github.com/ipfs/go-log/v2"
	pool "github.com/libp2p/go-buffer-pool"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	msmux "github.com/multiformats/go-multistream"
)

var log = logging.Logger("p2pd/oneframe")

// multistreamID opens every multistream-select negotiation.
const multistreamID = "/multistream/1.0.0"

// maxTokenLen bounds a token of the peer's answer to a proposal.
const maxTokenLen = 1024

// Open opens a stream to p speaking proto without waiting for the peer's
// answer to the protocol proposal, when h is connected to p and its
// peerstore already says that p serves proto (what the host's NewStream
// does too). It returns nil when that is not known or the stream cannot be
// opened this way, so that the caller goes the ordinary way
// (host.NewStream). A peer that does not serve proto after all gives
// go-multistream's ErrNotSupported on the stream's first Read.
func Open(ctx context.Context, h host.Host, p peer.ID, proto protocol.ID) network.Stream {
	if h.Network().Connectedness(p) != network.Connected {
		return nil
	}
	if got, err := h.Peerstore().SupportsProtocols(p, proto); err != nil || len(got) == 0 {
		return nil
	}
	s, err := h.Network().NewStream(network.WithNoDial(ctx, "already connected"), p)
	if err != nil {
		log.Debugw("opening a stream directly failed; negotiating through the host", "peer", p,
			"protocol", proto, "err", err)
		return nil
	}
	if err := s.SetProtocol(proto); err != nil {
		_ = s.ResetWithError(network.StreamResourceLimitExceeded)
		log.Debugw("opening a stream directly failed; negotiating through the host", "peer", p,
			"protocol", proto, "err", err)
		return nil
	}
	ls := &lazyStream{Stream: s, proto: proto}
	ls.proposal = appendToken(appendToken(nil, multistreamID), string(proto))
	return ls
}

// lazyStream is a stream whose protocol proposal goes out with its first
// Write (or, if a Read, CloseWrite or Close comes first, on its own then),
// and whose first Read checks the peer's answer before returning data.
// Reads must come from one goroutine at a time, as for any stream.
type lazyStream struct {
	network.Stream
	proto    protocol.ID
	proposal []byte

	sent atomic.Bool // the proposal is out (or failed to go out)
	wmu  sync.Mutex  // serialises sending the proposal; guards werr
	werr error       // why the proposal could not be sent

	answered bool  // the answer was read; only the reading goroutine touches it
	rerr     error // a refused or garbled answer; as answered
}

var _ network.Stream = (*lazyStream)(nil)

// appendToken appends one multistream-select message: its length
// (uvarint, counting the newline), the text and a newline.
func appendToken(b []byte, tok string) []byte {
	b = binary.AppendUvarint(b, uint64(len(tok)+1))
	b = append(b, tok...)
	return append(b, '\n')
}

// Write sends p, preceded by the proposal the first time.
func (l *lazyStream) Write(p []byte) (int, error) {
	if l.sent.Load() {
		return l.Stream.Write(p)
	}
	l.wmu.Lock()
	if l.sent.Load() {
		l.wmu.Unlock()
		if l.werr != nil {
			return 0, l.werr
		}
		return l.Stream.Write(p)
	}
	defer l.wmu.Unlock()
	buf := pool.Get(len(l.proposal) + len(p))
	defer pool.Put(buf)
	copy(buf, l.proposal)
	copy(buf[len(l.proposal):], p)
	n, err := l.Stream.Write(buf)
	l.sent.Store(true)
	if n < len(l.proposal) && err != nil {
		l.werr = err
		return 0, err
	}
	return n - len(l.proposal), err
}

// propose sends the proposal alone if it has not gone out yet.
func (l *lazyStream) propose() error {
	if l.sent.Load() {
		return nil
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.sent.Load() {
		return l.werr
	}
	_, err := l.Stream.Write(l.proposal)
	l.werr = err
	l.sent.Store(true)
	return err
}

// Read reads data; the first call sends the proposal if needed and reads
// the peer's answer first.
func (l *lazyStream) Read(p []byte) (int, error) {
	if !l.answered {
		l.answered = true
		if err := l.propose(); err != nil {
			l.rerr = err
		} else {
			l.rerr = l.readAnswer()
		}
	}
	if l.rerr != nil {
		return 0, l.rerr
	}
	if len(p) == 0 {
		return 0, nil
	}
	return l.Stream.Read(p)
}

// readAnswer reads the peer's two answers: the multistream-select header
// and the protocol echoed back ("na" if refused).
func (l *lazyStream) readAnswer() error {
	for _, want := range []string{multistreamID, string(l.proto)} {
		tok, err := readToken(l.Stream)
		if err != nil {
			return fmt.Errorf("reading the answer to the protocol proposal: %w", err)
		}
		switch {
		case tok == want:
		case tok == "na":
			// The error the host's own lazy streams give, so callers
			// tell a refused protocol the same way for both.
			return msmux.ErrNotSupported[protocol.ID]{Protos: []protocol.ID{l.proto}}
		default:
			return fmt.Errorf("protocol mismatch in lazy handshake (%s != %s)", tok, want)
		}
	}
	return nil
}

// readToken reads one multistream-select message without reading past it.
func readToken(r io.Reader) (string, error) {
	var one [1]byte
	br := byteReaderFunc(func() (byte, error) {
		_, err := io.ReadFull(r, one[:])
		return one[0], err
	})
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return "", err
	}
	if n == 0 || n > maxTokenLen {
		return "", fmt.Errorf("message of %d bytes in a protocol answer", n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return "", err
	}
	if buf[n-1] != '\n' {
		return "", errors.New("protocol answer not terminated by a newline")
	}
	return string(buf[:n-1]), nil
}

type byteReaderFunc func() (byte, error)

func (f byteReaderFunc) ReadByte() (byte, error) { return f() }

// CloseWrite sends the proposal if it has not gone out, so that the peer
// still learns the protocol, then half-closes.
func (l *lazyStream) CloseWrite() error {
	if err := l.propose(); err != nil {
		return err
	}
	return l.Stream.CloseWrite()
}

// Close sends the proposal if it has not gone out, then closes.
func (l *lazyStream) Close() error {
	_ = l.propose()
	return l.Stream.Close()
}
