package chat

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// session is one peer's chat stream, after the handshake. Its reader and
// writer goroutines are started by the hub. A session ends gracefully the
// way a request ends: the writer sends what is queued and half-closes; the
// reader reads until the peer half-closes too (bounded by config.linger),
// then closes the stream. So what was sent is read before the connection
// can go, even when the host closes right after the room.
type session struct {
	peer   peer.ID
	nick   string // the peer's nickname, cleaned; "" for none
	stream network.Stream
	lines  *lineReader   // also read the handshake: it may hold buffered bytes
	out    chan string   // messages queued for the peer
	quit   chan struct{} // closed by stop
	wrote  chan struct{} // closed when the writer ends
	once   sync.Once

	// stopping is set by the hub when it drops the session; only the hub
	// uses it.
	stopping bool
}

func (r *Room) newSession(p peer.ID, s network.Stream, lr *lineReader) *session {
	return &session{
		peer:   p,
		stream: s,
		lines:  lr,
		out:    make(chan string, r.cfg.queue),
		quit:   make(chan struct{}),
		wrote:  make(chan struct{}),
	}
}

// enqueue queues text for the peer, unless its queue is full.
func (s *session) enqueue(text string) bool {
	select {
	case s.out <- text:
		return true
	default:
		return false
	}
}

// stop ends the session. Gracefully, the writer sends what is queued and
// then half-closes the stream (the peer reads EOF); otherwise the stream is
// reset now. Only the first call counts.
func (s *session) stop(graceful bool) {
	s.once.Do(func() {
		if !graceful {
			s.stream.Reset()
		}
		close(s.quit)
	})
}

// bufSize is the line reader size a room needs: messages and handshake lines.
func (r *Room) bufSize() int { return max(r.cfg.maxLine, handshakeLineMax) }

// open opens a session to the connected peer p: stream, hello, answer. It
// fails with an error wrapping errRefused when p is in another room.
func (r *Room) open(ctx context.Context, p peer.ID) (*session, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.handshake)
	defer cancel()
	ctx = network.WithNoDial(ctx, "chat opens sessions on existing connections only")
	s, err := r.h.NewStream(ctx, p, ProtocolNickID, ProtocolID)
	if err != nil {
		return nil, fmt.Errorf("opening a chat stream: %w", err)
	}
	if err := s.SetDeadline(time.Now().Add(r.cfg.handshake)); err != nil {
		s.Reset()
		return nil, fmt.Errorf("setting the handshake deadline: %w", err)
	}
	if _, err := io.WriteString(s, helloPrefix+r.key+"\n"); err != nil {
		s.Reset()
		return nil, fmt.Errorf("sending hello: %w", err)
	}
	lr := newLineReader(s, r.bufSize())
	answer, err := lr.next(handshakeLineMax)
	if err != nil {
		s.Reset()
		return nil, fmt.Errorf("waiting for the answer to hello: %w", err)
	}
	if reason, ok := strings.CutPrefix(answer, refusedPrefix); ok {
		s.Close()
		return nil, fmt.Errorf("%w: %s", errRefused, Sanitize(reason))
	}
	if answer != welcomeLine {
		s.Reset()
		return nil, fmt.Errorf("unexpected answer to hello: %q", Sanitize(answer))
	}
	nick, err := r.exchangeNicks(s, lr)
	if err != nil {
		s.Reset()
		return nil, err
	}
	if err := s.SetDeadline(time.Time{}); err != nil {
		s.Reset()
		return nil, fmt.Errorf("clearing the handshake deadline: %w", err)
	}
	sess := r.newSession(p, s, lr)
	sess.nick = nick
	return sess, nil
}

// handleStream accepts a session: it reads the hello, answers it, and hands
// the session to the hub. It owns the stream until then.
func (r *Room) handleStream(s network.Stream) {
	life, ok := r.enter()
	if !ok {
		s.Reset()
		return
	}
	defer r.wg.Done()
	p := s.Conn().RemotePeer()
	if err := s.SetDeadline(time.Now().Add(r.cfg.handshake)); err != nil {
		log.Debugw("cannot set a deadline on a chat stream", "peer", p, "err", err)
		s.Reset()
		return
	}
	lr := newLineReader(s, r.bufSize())
	hello, err := lr.next(handshakeLineMax)
	if err != nil {
		log.Debugw("no hello on a chat stream", "peer", p, "err", err)
		s.Reset()
		return
	}
	key, ok := strings.CutPrefix(hello, helloPrefix)
	if !ok {
		log.Debugw("bad hello on a chat stream", "peer", p, "line", Sanitize(hello))
		s.Reset()
		return
	}
	if key != r.key {
		log.Debugw("refused a peer from another room", "peer", p)
		if _, err := io.WriteString(s, refusedPrefix+reasonOtherRoom+"\n"); err != nil {
			s.Reset()
			return
		}
		s.Close()
		return
	}
	if _, err := io.WriteString(s, welcomeLine+"\n"); err != nil {
		log.Debugw("cannot welcome a peer", "peer", p, "err", err)
		s.Reset()
		return
	}
	nick, err := r.exchangeNicks(s, lr)
	if err != nil {
		log.Debugw("no nickname on a chat stream", "peer", p, "err", err)
		s.Reset()
		return
	}
	if err := s.SetDeadline(time.Time{}); err != nil {
		s.Reset()
		return
	}
	sess := r.newSession(p, s, lr)
	sess.nick = nick
	select {
	case r.register <- sess:
	case <-life.Done():
		s.Reset()
	}
}

// exchangeNicks sends our nickname and reads the peer's, on a stream of
// ProtocolNickID (both sides send theirs after their handshake line); on
// a ProtocolID stream there are none.
func (r *Room) exchangeNicks(s network.Stream, lr *lineReader) (string, error) {
	if s.Protocol() != ProtocolNickID {
		return "", nil
	}
	if _, err := io.WriteString(s, nickPrefix+r.cfg.nick+"\n"); err != nil {
		return "", fmt.Errorf("sending the nickname: %w", err)
	}
	line, err := lr.next(handshakeLineMax)
	if err != nil {
		return "", fmt.Errorf("reading the nickname: %w", err)
	}
	nick, ok := strings.CutPrefix(line, nickPrefix)
	if !ok && line != strings.TrimSpace(nickPrefix) {
		return "", fmt.Errorf("expected a nickname line, got %q", Sanitize(line))
	}
	return cleanNick(nick), nil
}

// readLoop reads the peer's messages until the stream ends, then tells the
// hub. Lines over the size limit are skipped and reported as a Notice.
func (r *Room) readLoop(ctx context.Context, s *session) {
	var err error
	for {
		var text string
		text, err = s.lines.next(r.cfg.maxLine)
		if errors.Is(err, ErrLineTooLong) {
			log.Warnw("refused a line from a peer", "peer", s.peer, "err", err)
			if !r.deliver(ctx, Event{Kind: Notice, Peer: s.peer, Nick: s.nick, Err: fmt.Errorf("refused a line from the peer: %w", err)}) {
				err = nil // the room is closing
				break
			}
			continue
		}
		if err != nil {
			break
		}
		if text = Sanitize(text); text == "" {
			continue
		}
		if !r.deliver(ctx, Event{Kind: Message, Peer: s.peer, Nick: s.nick, Text: text}) {
			err = nil // the room is closing
			break
		}
	}
	if errors.Is(err, io.EOF) {
		err = nil
	}
	s.stop(err == nil)
	<-s.wrote
	s.stream.Close() // both halves are done (or the stream was reset)
	select {
	case r.unregister <- sessionEnd{sess: s, err: err}:
	case <-ctx.Done():
	}
}

// deliver hands a message to the outbox, waiting while its queue is full.
func (r *Room) deliver(ctx context.Context, ev Event) bool {
	select {
	case r.msgs <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

// writeLoop sends the queued messages until the session stops, then sends
// what is still queued (unless the stream was reset), half-closes the stream
// and gives the peer config.linger to half-close too. A write that fails or
// times out resets the stream, which ends the reader.
func (r *Room) writeLoop(s *session) {
	defer close(s.wrote)
	w := bufio.NewWriter(s.stream)
	write := func(text string) error {
		if err := s.stream.SetWriteDeadline(time.Now().Add(r.cfg.writeTimeout)); err != nil {
			return err
		}
		w.WriteString(text)
		w.WriteByte('\n')
		return w.Flush()
	}
	fail := func(err error) {
		select {
		case <-s.quit: // stopped meanwhile: the error is ours
		default:
			log.Infow("cannot send to peer; dropping it", "peer", s.peer, "err", err)
		}
		s.stream.Reset()
	}
	for {
		select {
		case text := <-s.out:
			if err := write(text); err != nil {
				fail(err)
				return
			}
		case <-s.quit:
			// What is still queued gets config.linger in all, not a write
			// timeout each: the session is ending.
			if err := s.stream.SetWriteDeadline(time.Now().Add(r.cfg.linger)); err != nil {
				s.stream.Reset()
				return
			}
			write = func(text string) error {
				w.WriteString(text)
				w.WriteByte('\n')
				return w.Flush()
			}
			for {
				select {
				case text := <-s.out:
					if err := write(text); err != nil {
						s.stream.Reset() // stopping anyway: nothing to report
						return
					}
				default:
					if err := s.stream.CloseWrite(); err != nil {
						s.stream.Reset()
						return
					}
					// Unblocks the reader if the peer never half-closes.
					s.stream.SetReadDeadline(time.Now().Add(r.cfg.linger))
					return
				}
			}
		}
	}
}
