package listeners

import (
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/protocol"
)

// MaxProtocolLen is the longest protocol name libp2p can negotiate:
// multistream-select refuses longer ones, so a listener or forward with
// such a name could never carry a stream.
const MaxProtocolLen = 1024

// ValidateProtocol checks that p can be negotiated and shown: non-empty, at
// most MaxProtocolLen bytes of UTF-8, with no white space or control
// characters (a name with a newline would split a line of `p2pd ls` in
// two). The error names the rule broken; errors wrap ErrInvalidProtocol
// (or are ErrEmptyProtocol). It does not check the /x/ namespace.
func ValidateProtocol(p protocol.ID) error {
	if p == "" {
		return ErrEmptyProtocol
	}
	if len(p) > MaxProtocolLen {
		return fmt.Errorf("%w: it is %d bytes long, the limit is %d bytes (libp2p cannot negotiate longer names)", ErrInvalidProtocol, len(p), MaxProtocolLen)
	}
	for i, r := range string(p) {
		switch {
		case r == utf8.RuneError:
			if _, n := utf8.DecodeRuneInString(string(p[i:])); n <= 1 {
				return fmt.Errorf("%w: it is not valid UTF-8 (bad byte at offset %d)", ErrInvalidProtocol, i)
			}
		case unicode.IsSpace(r):
			return fmt.Errorf("%w: it contains white space (%q at byte %d); white space is not allowed", ErrInvalidProtocol, r, i)
		case unicode.IsControl(r) || !unicode.IsPrint(r):
			return fmt.Errorf("%w: it contains a control or non-printable character (%q at byte %d); these are not allowed", ErrInvalidProtocol, r, i)
		}
	}
	return nil
}
