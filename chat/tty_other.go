//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package chat

import (
	"errors"
	"io"
	"os"
)

// IsTerminal reports whether f is a terminal. On this system it always
// reports false: the chat runs in plain-line mode.
func IsTerminal(f *os.File) bool { return false }

func termWidth(f *os.File) int { return 0 }

func editMode(f *os.File) (func() error, error) {
	return nil, errors.New("line editing is not supported on this system")
}

var errStopped = errors.New("input reading stopped")

// newFileReader returns f itself: on this system a blocked read of stdin
// cannot be interrupted.
func newFileReader(f *os.File, done <-chan struct{}) io.Reader { return f }
