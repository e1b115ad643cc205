//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package chat

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), ioctlGetTermios)
	return err == nil
}

// termWidth returns the number of columns of the terminal f, or 0.
func termWidth(f *os.File) int {
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return 0
	}
	return int(ws.Col)
}

// editMode switches the terminal f to the mode the line editor needs: no
// line buffering and no echo (the editor does both), but signals still work,
// so Ctrl-C still interrupts. It returns the function that restores the
// previous mode.
func editMode(f *os.File) (restore func() error, err error) {
	fd := int(f.Fd())
	old, err := unix.IoctlGetTermios(fd, ioctlGetTermios)
	if err != nil {
		return nil, fmt.Errorf("reading the terminal mode: %w", err)
	}
	t := *old
	t.Lflag &^= unix.ICANON | unix.ECHO | unix.IEXTEN
	t.Cc[unix.VMIN] = 1
	t.Cc[unix.VTIME] = 0
	if err := unix.IoctlSetTermios(fd, ioctlSetTermios, &t); err != nil {
		return nil, fmt.Errorf("setting the terminal mode: %w", err)
	}
	return func() error {
		if err := unix.IoctlSetTermios(fd, ioctlSetTermios, old); err != nil {
			return fmt.Errorf("restoring the terminal mode: %w", err)
		}
		return nil
	}, nil
}

// pollInterval is how often a blocked read of a file looks at its done
// channel, in milliseconds.
const pollInterval = 100

// errStopped is what a fileReader's Read returns once done is closed.
var errStopped = errors.New("input reading stopped")

// fileReader reads a file (stdin) in a way that can be stopped: it waits for
// input with poll(2) and gives up once done is closed, so the goroutine
// reading does not stay blocked in read(2) forever.
type fileReader struct {
	f    *os.File
	fd   int
	done <-chan struct{}
}

func newFileReader(f *os.File, done <-chan struct{}) io.Reader {
	return &fileReader{f: f, fd: int(f.Fd()), done: done}
}

// Read implements io.Reader.
func (r *fileReader) Read(p []byte) (int, error) {
	for {
		select {
		case <-r.done:
			return 0, errStopped
		default:
		}
		fds := []unix.PollFd{{Fd: int32(r.fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, pollInterval)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return r.f.Read(p) // cannot poll this file: read it plainly
		case n > 0:
			return r.f.Read(p)
		}
	}
}
