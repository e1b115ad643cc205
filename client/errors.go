package client

import (
	"errors"
	"fmt"

	"github.com/p2pd/p2pd/api"
)

// Errors callers branch on. Test for them with errors.Is.
var (
	// ErrUnreachable: no daemon answered: none is recorded in the repo (no
	// REPO/api file), the connection was refused or timed out, or it broke
	// before the answer arrived (the errors are *UnreachableError values,
	// whose Sent field tells the last case apart). A live event stream or
	// foreground tunnel whose daemon goes away ends with it too.
	ErrUnreachable = errors.New("daemon unreachable")
	// ErrUnauthorized: the daemon refused the bearer token (HTTP 401).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden: the daemon refused the request whatever the token, as it
	// refuses requests from web pages (HTTP 403).
	ErrForbidden = errors.New("forbidden")
	// ErrNotFound: the daemon has no such object, such as a stream ID
	// (HTTP 404).
	ErrNotFound = errors.New("not found")
	// ErrBadRequest: the daemon refused the request's arguments, such as a
	// protocol outside /x/ (HTTP 400).
	ErrBadRequest = errors.New("bad request")
	// ErrConflict: the request collides with the daemon's state, such as a
	// second listen for one protocol (HTTP 409).
	ErrConflict = errors.New("conflict")
	// ErrTunnelEnded: the daemon removed a foreground tunnel while its
	// Tunnel was open (someone ran `p2pd close` on it, or the daemon
	// stopped). Tunnel.Err returns it.
	ErrTunnelEnded = errors.New("the daemon ended the tunnel")
)

// UnreachableError says which daemon could not be reached and why. It
// matches ErrUnreachable.
type UnreachableError struct {
	// Addr is the API address tried; empty when the repo records none.
	Addr string
	// Repo is the repo the address was to come from, if one was named.
	Repo string
	// Sent is true when the request had been written to the daemon before
	// the connection failed: the daemon may have carried it out. When
	// false, the request never left the client.
	Sent bool
	// Err is the cause.
	Err error
}

// Error words the failure with the next step for a user.
func (e *UnreachableError) Error() string {
	start := "`p2pd daemon`"
	if e.Repo != "" {
		start = fmt.Sprintf("`p2pd daemon --repo %s`", e.Repo)
	}
	if e.Addr == "" {
		return fmt.Sprintf("no daemon is running for repo %s (%v): start one with %s", e.Repo, e.Err, start)
	}
	if e.Sent {
		return fmt.Sprintf("lost the daemon at %s: %v", e.Addr, e.Err)
	}
	return fmt.Sprintf("cannot reach the daemon at %s (%v): is %s running?", e.Addr, e.Err, start)
}

// Unwrap returns the cause.
func (e *UnreachableError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrUnreachable) true.
func (e *UnreachableError) Is(target error) bool { return target == ErrUnreachable }

// Error is an error answer of the daemon. It matches the sentinel for its
// code (ErrNotFound, ErrUnauthorized, ...).
type Error struct {
	// Status is the HTTP status code.
	Status int
	// Code is the API error code (one of api.Code*).
	Code string
	// Message is the daemon's explanation, worded for a user.
	Message string
}

// Error returns the daemon's message.
func (e *Error) Error() string { return e.Message }

// Is maps API error codes onto the package's sentinels.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		return e.Code == api.CodeUnauthorized
	case ErrForbidden:
		return e.Code == api.CodeForbidden
	case ErrNotFound:
		return e.Code == api.CodeNotFound
	case ErrBadRequest:
		return e.Code == api.CodeBadRequest
	case ErrConflict:
		return e.Code == api.CodeConflict
	}
	return false
}
