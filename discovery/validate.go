package discovery

import (
	"errors"
	"fmt"
)

// ValidateMode checks a DHT mode name the way the Mode option does, for
// callers that reject bad input before building anything. The error says
// what is expected, without repeating the value.
func ValidateMode(m string) error {
	switch m {
	case ModeAuto, ModeServer, ModeClient, ModeOff:
		return nil
	}
	return errors.New("want auto, server, client or off")
}

// ValidatePrefix checks a DHT protocol prefix the way the ProtocolPrefix
// option does; the error says what is wrong, without repeating the value.
func ValidatePrefix(p string) error {
	if err := validPrefix(p); err != nil {
		return fmt.Errorf("a DHT protocol prefix %w", err)
	}
	return nil
}
