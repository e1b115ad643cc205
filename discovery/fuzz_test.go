package discovery

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzValidateRendezvous: an accepted rendezvous string is 1 to 1,024
// bytes of UTF-8 without control characters.
func FuzzValidateRendezvous(f *testing.F) {
	for _, s := range []string{"my-team", "", "a\nb", "caf\xe9", "\x1b[2J", strings.Repeat("r", 1025), "équipe 7"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidateRendezvous(s) != nil {
			return
		}
		if s == "" || len(s) > MaxRendezvousLen || !utf8.ValidString(s) || strings.IndexFunc(s, unicode.IsControl) >= 0 {
			t.Fatalf("accepted %q", s)
		}
	})
}
