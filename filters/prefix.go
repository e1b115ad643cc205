package filters

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// ErrInvalidPrefix is matched (with errors.Is) by every error ParsePrefix
// returns, and by the errors New returns for a zero netip.Prefix.
var ErrInvalidPrefix = errors.New("invalid CIDR")

// PrefixError describes why a string is not a usable address range. Its
// message names the input and the reason, for example
// `invalid CIDR "10.0.0.0/99": prefix length 99 is out of range for IPv4 (0-32)`.
type PrefixError struct {
	// Input is the string as the caller gave it.
	Input string
	// Reason says what is wrong with it, in words a user can act on.
	Reason string
}

// Error implements error.
func (e *PrefixError) Error() string {
	return fmt.Sprintf("invalid CIDR %q: %s", e.Input, e.Reason)
}

// Is reports whether target is ErrInvalidPrefix.
func (e *PrefixError) Is(target error) bool { return target == ErrInvalidPrefix }

// ParsePrefix parses an address range in CIDR notation ("10.0.0.0/8",
// "fd00::/8"). A bare address is a range of one: "10.0.0.1" means
// 10.0.0.1/32 and "::1" means ::1/128. Host bits are cleared, so "10.0.0.1/8"
// yields 10.0.0.0/8. Surrounding white space is ignored. IPv6 zones are
// refused: a zone names an interface, not a range.
//
// Errors are *PrefixError values (matching ErrInvalidPrefix) that name the
// input; they do not mention any flag, so callers can prefix their own
// context.
func ParsePrefix(s string) (netip.Prefix, error) {
	fail := func(format string, args ...any) (netip.Prefix, error) {
		return netip.Prefix{}, &PrefixError{Input: s, Reason: fmt.Sprintf(format, args...)}
	}
	in := strings.TrimSpace(s)
	if in == "" {
		return fail("empty address range")
	}
	addrPart, lenPart, hasLen := strings.Cut(in, "/")
	if strings.Contains(addrPart, "%") {
		return fail("IPv6 zones are not allowed in an address range")
	}
	addr, err := netip.ParseAddr(addrPart)
	if err != nil {
		return fail("%q is not an IP address", addrPart)
	}
	family, maxBits := "IPv4", 32
	if addr.Is6() {
		family, maxBits = "IPv6", 128
	}
	bits := maxBits
	if hasLen {
		if lenPart == "" || strings.TrimLeft(lenPart, "0123456789") != "" {
			return fail("prefix length %q is not a number", lenPart)
		}
		n, err := strconv.Atoi(lenPart)
		if err != nil || n > maxBits {
			// Atoi only fails here on overflow, which is out of range too.
			return fail("prefix length %s is out of range for %s (0-%d)", lenPart, family, maxBits)
		}
		bits = n
	}
	p, err := addr.Prefix(bits)
	if err != nil {
		// Unreachable: addr has no zone and bits is in range.
		return fail("%v", err)
	}
	return p, nil
}

// normalize returns p in the form the filters compare against: masked, and
// an IPv4-mapped IPv6 range of /96 or longer (::ffff:10.0.0.0/104) turned into
// the IPv4 range it denotes (10.0.0.0/8), because addresses are unmapped
// before they are compared.
func normalize(p netip.Prefix) netip.Prefix {
	p = p.Masked()
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p
}
