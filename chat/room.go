package chat

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	logging "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
)

var log = logging.Logger("p2pd/chat")

// MaxRoomBytes is the longest room string New accepts.
const MaxRoomBytes = 512

// EventKind says what an Event reports.
type EventKind int

// The kinds of Event.
const (
	// PeerJoined: a session with Peer started; Peer is in the room.
	PeerJoined EventKind = iota + 1
	// PeerLeft: the session with Peer ended (Err says why, nil for a clean
	// leave); Peer is no longer in the room.
	PeerLeft
	// Message: Peer sent the line Text.
	Message
	// Notice: something about Peer the user may want to know that is not a
	// message; Err says what (for a refused line it wraps ErrLineTooLong).
	Notice
)

// String returns the kind's name, e.g. "joined".
func (k EventKind) String() string {
	switch k {
	case PeerJoined:
		return "joined"
	case PeerLeft:
		return "left"
	case Message:
		return "message"
	case Notice:
		return "notice"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is something that happened in the room. For one peer, events come in
// the order they happened: PeerJoined, its messages, PeerLeft.
type Event struct {
	Kind EventKind
	Peer peer.ID
	// Text is the message of a Message event, cleaned by Sanitize; never
	// empty and never longer than the size limit.
	Text string
	// Err is why a session ended (PeerLeft) or what a Notice is about.
	Err error
	// Nick is the nickname the peer gave (cleaned), or "" for none or a
	// peer whose p2pd has no nicknames.
	Nick string
}

// ShortID is the short form of a peer ID shown in the chat: its last six
// characters, the part that differs between Ed25519 peer IDs.
func ShortID(p peer.ID) string {
	s := p.String()
	if len(s) <= 6 {
		return s
	}
	return s[len(s)-6:]
}

// Room is one chat room on one host: the sessions with the peers in it and
// the goroutines that run them. Build it with New, run it with Start, stop
// it with Close (before closing the host). Its methods are safe for
// concurrent use.
type Room struct {
	h    host.Host
	name string
	key  string
	cfg  config

	// mu guards started, closed, life and cancel.
	mu      sync.Mutex
	started bool
	closed  bool
	// life is the lifetime of what Start starts: derived from Start's ctx
	// and cancelled by Close. It lives here because the goroutines it bounds
	// belong to the Room, not to a call.
	life   context.Context
	cancel context.CancelFunc

	// Channels to the hub goroutine, which owns the sessions. Made by New,
	// never closed.
	register   chan *session
	unregister chan sessionEnd
	dialed     chan dialResult
	sends      chan sendReq
	lists      chan chan []peer.ID
	kick       chan struct{} // capacity 1: pending has news

	// pendMu guards pending: the peers the event watcher saw change since
	// the hub last looked (true: the peer was seen disconnecting).
	pendMu  sync.Mutex
	pending map[peer.ID]bool

	ctl    chan Event // hub -> outbox, unbuffered
	msgs   chan Event // session readers -> outbox, unbuffered
	events chan Event // outbox -> user; closed by Close

	// wg counts every goroutine the Room starts and every stream handler
	// running; Close waits for it.
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// New builds a room named name (the rendezvous string) on h. It checks the
// options and the name, does no I/O and starts nothing. The name must be
// non-empty UTF-8 of at most MaxRoomBytes bytes without control characters.
func New(h host.Host, name string, opts ...Option) (*Room, error) {
	if h == nil {
		return nil, errors.New("chat needs a host: got nil")
	}
	if err := ValidateRoom(name); err != nil {
		return nil, err
	}
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	return &Room{
		h:          h,
		name:       name,
		key:        roomKey(name),
		cfg:        cfg,
		register:   make(chan *session),
		unregister: make(chan sessionEnd),
		dialed:     make(chan dialResult),
		sends:      make(chan sendReq),
		lists:      make(chan chan []peer.ID),
		kick:       make(chan struct{}, 1),
		pending:    make(map[peer.ID]bool),
		ctl:        make(chan Event),
		msgs:       make(chan Event),
		events:     make(chan Event),
	}, nil
}

// ValidateRoom checks a room name the way New does, so a command line can
// be checked before any host is built.
func ValidateRoom(name string) error {
	switch {
	case name == "":
		return errors.New("invalid room name: empty")
	case len(name) > MaxRoomBytes:
		return fmt.Errorf("invalid room name: %d bytes, the limit is %d", len(name), MaxRoomBytes)
	case !utf8.ValidString(name):
		return errors.New("invalid room name: not valid UTF-8")
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return fmt.Errorf("invalid room name %q: contains a control character", name)
	}
	return nil
}

// Name returns the room's name.
func (r *Room) Name() string { return r.name }

// Nick returns this peer's nickname ("" for none).
func (r *Room) Nick() string { return r.cfg.nick }

// Self returns the peer ID of the room's host: the author of what Send sends.
func (r *Room) Self() peer.ID { return r.h.ID() }

// MaxLineBytes returns the size limit of one message.
func (r *Room) MaxLineBytes() int { return r.cfg.maxLine }

// Events returns the channel of the room's events. Drain it: while nobody
// reads, messages from peers wait in their streams. It is closed by Close.
func (r *Room) Events() <-chan Event { return r.events }

// Start registers the chat protocol on the host and starts the goroutines
// that open, accept and run sessions. It returns at once. It opens a session
// with each connected peer that speaks the protocol (if this peer is the
// opener, see the package documentation), now and whenever one connects.
// When ctx ends the room stops as if closed, but Close is still needed to
// wait for it. Start may be called once.
func (r *Room) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.closed:
		return ErrClosed
	case r.started:
		return errors.New("chat room already started")
	}
	sub, err := r.h.EventBus().Subscribe([]any{
		new(event.EvtPeerIdentificationCompleted),
		new(event.EvtPeerProtocolsUpdated),
		new(event.EvtPeerConnectednessChanged),
	}, eventbus.Name("p2pd-chat"), eventbus.BufSize(64))
	if err != nil {
		return fmt.Errorf("watching peers: %w", err)
	}
	r.life, r.cancel = context.WithCancel(ctx)
	r.started = true
	life := r.life
	hb := newHub(r)
	r.wg.Add(3)
	go func() { defer r.wg.Done(); r.watch(life, sub) }()
	go func() { defer r.wg.Done(); hb.run(life) }()
	go func() { defer r.wg.Done(); r.outbox(life) }()
	r.h.SetStreamHandler(ProtocolNickID, r.handleStream)
	r.h.SetStreamHandler(ProtocolID, r.handleStream)
	for _, p := range r.h.Network().Peers() {
		r.poke(p, false)
	}
	log.Infow("joined chat room", "protocol", ProtocolID, "room", r.name)
	return nil
}

// Close leaves the room: it stops accepting sessions, sends what is queued
// and closes every session (peers see us leave), waits for every goroutine
// the room started, and closes the Events channel. It is safe to call more
// than once and before Start.
func (r *Room) Close() error {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed = true
		started, cancel := r.started, r.cancel
		r.mu.Unlock()
		if started {
			r.h.RemoveStreamHandler(ProtocolNickID)
			r.h.RemoveStreamHandler(ProtocolID)
			cancel()
			r.wg.Wait()
		}
		close(r.events)
	})
	return nil
}

// running returns the room's lifetime, or why the room does not run.
func (r *Room) running() (context.Context, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.closed:
		return nil, ErrClosed
	case !r.started:
		return nil, ErrNotStarted
	case r.life.Err() != nil:
		return nil, ErrClosed
	}
	return r.life, nil
}

// enter counts a stream handler in r.wg, unless the room is closing.
func (r *Room) enter() (context.Context, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || !r.started || r.life.Err() != nil {
		return nil, false
	}
	r.wg.Add(1)
	return r.life, true
}

// Send sends text to every peer in the room and returns how many peers it
// was queued for (0 when the room is empty). text must be one line: not
// empty, no line break (ErrLineBreak), at most MaxLineBytes bytes
// (ErrLineTooLong).
func (r *Room) Send(ctx context.Context, text string) (int, error) {
	if err := checkMessage(text, r.cfg.maxLine); err != nil {
		return 0, err
	}
	life, err := r.running()
	if err != nil {
		return 0, err
	}
	req := sendReq{text: text, reply: make(chan int, 1)}
	select {
	case r.sends <- req:
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-life.Done():
		return 0, ErrClosed
	}
	return <-req.reply, nil // the hub answers as soon as it takes the request
}

// Peers returns the peers in the room, sorted.
func (r *Room) Peers(ctx context.Context) ([]peer.ID, error) {
	life, err := r.running()
	if err != nil {
		return nil, err
	}
	reply := make(chan []peer.ID, 1)
	select {
	case r.lists <- reply:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-life.Done():
		return nil, ErrClosed
	}
	return <-reply, nil
}

// watch turns host events into pokes for the hub until ctx ends. It always
// drains the subscription, so it never holds up the host's event bus.
func (r *Room) watch(ctx context.Context, sub event.Subscription) {
	defer sub.Close()
	for {
		select {
		case e, ok := <-sub.Out():
			if !ok {
				return
			}
			switch e := e.(type) {
			case event.EvtPeerIdentificationCompleted:
				r.poke(e.Peer, false)
			case event.EvtPeerProtocolsUpdated:
				r.poke(e.Peer, false)
			case event.EvtPeerConnectednessChanged:
				r.poke(e.Peer, e.Connectedness != network.Connected)
			}
		case <-ctx.Done():
			return
		}
	}
}

// poke asks the hub to look at p soon, without waiting for it.
func (r *Room) poke(p peer.ID, disconnected bool) {
	r.pendMu.Lock()
	r.pending[p] = r.pending[p] || disconnected
	r.pendMu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// takePending returns and clears the poked peers.
func (r *Room) takePending() map[peer.ID]bool {
	r.pendMu.Lock()
	defer r.pendMu.Unlock()
	p := r.pending
	r.pending = make(map[peer.ID]bool)
	return p
}

// maxQueuedEvents is how many events the outbox holds before it stops
// taking messages from peers (which then wait in their streams).
const maxQueuedEvents = 256

// outbox hands events to the user in the order it gets them. It always takes
// the hub's events at once, so the hub never waits for the user; messages
// from peers wait while the queue is full.
func (r *Room) outbox(ctx context.Context) {
	var q []Event
	for {
		var out chan<- Event
		var first Event
		if len(q) > 0 {
			out, first = r.events, q[0]
		}
		msgs := r.msgs
		if len(q) >= maxQueuedEvents {
			msgs = nil
		}
		select {
		case ev := <-r.ctl:
			q = append(q, ev)
		case ev := <-msgs:
			q = append(q, ev)
		case out <- first:
			q[0] = Event{}
			q = q[1:]
		case <-ctx.Done():
			return
		}
	}
}
