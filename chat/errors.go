package chat

import "errors"

var (
	// ErrLineTooLong is returned by Send for a message longer than the size
	// limit (MaxLineBytes), and carried by the Notice event reported when a
	// peer sends such a line. The error returned wraps it with the sizes.
	ErrLineTooLong = errors.New("line too long")

	// ErrLineBreak is returned by Send for a message that contains "\n" or
	// "\r": one message is one line.
	ErrLineBreak = errors.New("a message cannot contain a line break")

	// ErrEmpty is returned by Send for an empty message.
	ErrEmpty = errors.New("empty message")

	// ErrNotStarted is returned by Send and Peers before Start.
	ErrNotStarted = errors.New("chat room not started")

	// ErrClosed is returned by Send, Peers and Start once the room is closed
	// (by Close, or because the context given to Start ended).
	ErrClosed = errors.New("chat room closed")

	// ErrWaitTimeout is returned (wrapped) by Terminal.Run when the peers
	// WaitPeers asked for did not all join in time.
	ErrWaitTimeout = errors.New("timed out waiting for peers")

	// errRefused is how a session attempt ends when the other peer is in
	// another room (or refuses for another reason it gives).
	errRefused = errors.New("refused by peer")
)
