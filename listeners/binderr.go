package listeners

import (
	"errors"
	"fmt"
	"path/filepath"
	"syscall"

	ma "github.com/multiformats/go-multiaddr"
)

// Errors a forward's bind can fail with because of the address the user
// gave (not a fault of the daemon). Test with errors.Is; the error itself
// names the address.
var (
	// ErrAddrInUse: something else already listens on the address.
	ErrAddrInUse = errors.New("address already in use")
	// ErrCannotBind: the address cannot be listened on here (not an
	// address of this machine, no permission, a unix path in a directory
	// that does not exist).
	ErrCannotBind = errors.New("cannot listen on the address")
)

// bindError is a bind failure worded for the user; it wraps both the kind
// (ErrAddrInUse or ErrCannotBind) and the system's error.
type bindError struct {
	msg       string
	kind, err error
}

func (e *bindError) Error() string   { return e.msg }
func (e *bindError) Unwrap() []error { return []error{e.kind, e.err} }

// explainBind turns the error of binding addr into a bindError when the
// address is at fault, and wraps any other error with the address.
func explainBind(addr ma.Multiaddr, err error) error {
	in := func(kind error, format string, args ...any) error {
		return &bindError{msg: fmt.Sprintf(format, args...), kind: kind, err: err}
	}
	path, unixErr := addr.ValueForProtocol(ma.P_UNIX)
	isUnix := unixErr == nil
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return in(ErrAddrInUse, "address %s is already in use", addr)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return in(ErrCannotBind, "cannot listen on %s: not an address of this machine", addr)
	case isUnix && (errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTDIR)):
		return in(ErrCannotBind, "cannot listen on %s: directory %s does not exist", addr, filepath.Dir(path))
	case isUnix && errors.Is(err, syscall.ENAMETOOLONG), isUnix && errors.Is(err, syscall.EINVAL):
		return in(ErrCannotBind, "cannot listen on %s: the socket path is too long (at most 107 bytes)", addr)
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return in(ErrCannotBind, "cannot listen on %s: permission denied", addr)
	}
	return fmt.Errorf("listening on %s: %w", addr, err)
}
