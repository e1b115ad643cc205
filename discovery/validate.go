package discovery

import "fmt"

// ValidateMode checks a DHT mode name the way the Mode option does, for
// callers that want to reject bad input before building anything.
func ValidateMode(m string) error {
	var c config
	return Mode(m)(&c)
}

// ValidatePrefix checks a DHT protocol prefix the way the ProtocolPrefix
// option does.
func ValidatePrefix(p string) error {
	if err := validPrefix(p); err != nil {
		return fmt.Errorf("invalid DHT protocol prefix %q: %w", p, err)
	}
	return nil
}
