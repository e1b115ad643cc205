package chat

import (
	"fmt"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Defaults of the tunable limits.
const (
	// DefaultMaxLineBytes is the default size limit of one message, in bytes
	// of UTF-8 text without the line break.
	DefaultMaxLineBytes = 4096
	// MaxMaxLineBytes is the largest limit MaxLineBytes accepts.
	MaxMaxLineBytes = 64 << 10
	// DefaultHandshakeTimeout bounds opening a session: the stream, the
	// hello line and the answer.
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultWriteTimeout bounds writing one message to one peer; a peer that
	// does not take it in time is dropped (and announced as left).
	DefaultWriteTimeout = 30 * time.Second
)

// Option configures a Room. Options check their own arguments; New reports
// the first error.
type Option func(*config) error

// config is the validated configuration of a Room.
type config struct {
	maxLine      int
	handshake    time.Duration
	writeTimeout time.Duration
	sweep        time.Duration              // how often the hub re-examines connected peers
	queue        int                        // messages queued per peer before it counts as too slow
	linger       time.Duration              // how long a closing session waits for the peer to close its half
	onDial       func(p peer.ID, err error) // tests: how each attempt to open a session ended
	nick         string                     // shown to the others beside our short ID
}

// Nick sets the nickname the others see beside this peer's short ID
// (default none). See ValidateNick.
func Nick(name string) Option {
	return func(c *config) error {
		if err := ValidateNick(name); err != nil {
			return err
		}
		c.nick = strings.TrimSpace(name)
		return nil
	}
}

func defaultConfig() config {
	return config{
		maxLine:      DefaultMaxLineBytes,
		handshake:    DefaultHandshakeTimeout,
		writeTimeout: DefaultWriteTimeout,
		sweep:        5 * time.Second,
		queue:        128,
		linger:       2 * time.Second,
	}
}

// MaxLineBytes sets the size limit of one message, in bytes without the
// line break (default DefaultMaxLineBytes, at most MaxMaxLineBytes). Peers
// in one room should use the same limit: a receiver refuses lines over its
// own limit.
func MaxLineBytes(n int) Option {
	return func(c *config) error {
		if n < 1 || n > MaxMaxLineBytes {
			return fmt.Errorf("line size limit %d: want 1 to %d bytes", n, MaxMaxLineBytes)
		}
		c.maxLine = n
		return nil
	}
}

// HandshakeTimeout bounds opening or accepting one session (default
// DefaultHandshakeTimeout).
func HandshakeTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("handshake timeout %v: must be positive", d)
		}
		c.handshake = d
		return nil
	}
}

// WriteTimeout bounds writing one message to one peer (default
// DefaultWriteTimeout). A peer that does not take a message in time, or that
// has more than 128 messages waiting, is dropped; it comes back as a
// new session once the network lets it.
func WriteTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("write timeout %v: must be positive", d)
		}
		c.writeTimeout = d
		return nil
	}
}
