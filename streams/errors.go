package streams

import "errors"

var (
	// ErrClosed is returned by Registry.Bridge once Registry.Close has been
	// called. It is also the reason passed to the OnClose hook for the streams
	// that Close resets.
	ErrClosed = errors.New("stream registry is closed")

	// ErrNotFound is returned (wrapped, with the ID) by Registry.Reset when no
	// open stream has that ID: it never existed or it has already ended.
	ErrNotFound = errors.New("no such stream")

	// ErrResetRequested is the reason passed to the OnClose hook for a stream
	// ended by Registry.Reset or Registry.ResetAll.
	ErrResetRequested = errors.New("stream reset on request")
)
