package api

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Error codes carried in Error.Code; clients branch on them.
const (
	CodeBadRequest   = "bad_request"
	CodeUnauthorized = "unauthorized"
	CodeForbidden    = "forbidden"
	CodeNotFound     = "not_found"
	CodeConflict     = "conflict"
	CodeUnavailable  = "unavailable"
	CodeInternal     = "internal"
)

// Error is the body of every non-2xx answer of the control API.
type Error struct {
	// Message says what went wrong, worded for the user.
	Message string `json:"error"`
	// Code is one of the Code* constants.
	Code string `json:"code"`
}

// Error implements the error interface.
func (e *Error) Error() string { return e.Message }

// Duration is a time.Duration that travels as a Go duration string ("10s")
// and also accepts a number of nanoseconds.
type Duration time.Duration

// MarshalJSON encodes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON accepts "1.5s" or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	s := strings.TrimSpace(string(b))
	if strings.HasPrefix(s, `"`) {
		var str string
		if err := json.Unmarshal(b, &str); err != nil {
			return err
		}
		v, err := time.ParseDuration(str)
		if err != nil {
			return fmt.Errorf("invalid duration %q: %w", str, err)
		}
		*d = Duration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("invalid duration %s: want a string like \"10s\"", s)
	}
	*d = Duration(n)
	return nil
}
