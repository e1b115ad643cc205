package discovery

import (
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"
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

// MaxRendezvousLen is the longest rendezvous string accepted.
const MaxRendezvousLen = 1024

// ValidateRendezvous checks a rendezvous string: non-empty, at most
// MaxRendezvousLen bytes of UTF-8, no control characters (they would garble
// logs and the text output that shows it). The error names the rule broken,
// without repeating the value.
func ValidateRendezvous(ns string) error {
	switch {
	case ns == "":
		return errEmptyNS
	case len(ns) > MaxRendezvousLen:
		return fmt.Errorf("rendezvous string is %d bytes long, the limit is %d", len(ns), MaxRendezvousLen)
	case !utf8.ValidString(ns):
		return errors.New("rendezvous string is not valid UTF-8")
	}
	for i, r := range ns {
		if unicode.IsControl(r) {
			return fmt.Errorf("rendezvous string contains a control character (%q at byte %d); these are not allowed", r, i)
		}
	}
	return nil
}
