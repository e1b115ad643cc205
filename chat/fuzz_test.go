package chat

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzLineProtocol reads what a peer sends on a chat stream the way a
// session does (a hello line bounded by handshakeLineMax, then message
// lines bounded by the message limit) and prints each line as a room
// would. Reading ends; no line holds a line break or exceeds its limit;
// what would be printed is valid UTF-8 without control characters.
func FuzzLineProtocol(f *testing.F) {
	for _, s := range []string{
		helloPrefix + roomKey("team") + "\nhi there\nsecond line\r\n",
		helloPrefix + "x\n" + strings.Repeat("a", 300) + "\nok",
		"\x1b[2J\x1b[H\n\u202eevil\n",
		"caf\xe9\n\r\n\n",
		strings.Repeat("x", 5000) + "\n",
		"",
	} {
		f.Add([]byte(s), uint16(64))
	}
	f.Fuzz(func(t *testing.T, b []byte, limit uint16) {
		max := int(limit)%DefaultMaxLineBytes + 1
		lr := newLineReader(bytes.NewReader(b), max)
		if hello, err := lr.next(min(handshakeLineMax, max)); err == nil {
			check(t, hello, min(handshakeLineMax, max))
			_, _ = strings.CutPrefix(hello, helloPrefix)
		}
		for i := 0; ; i++ {
			if i > len(b)+1 {
				t.Fatalf("more lines than bytes in %q", b)
			}
			line, err := lr.next(max)
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil && !errors.Is(err, ErrLineTooLong) {
				t.Fatalf("reading %q: %v", b, err)
			}
			if err == nil {
				check(t, line, max)
			}
		}
	})
}

func check(t *testing.T, line string, limit int) {
	t.Helper()
	if strings.ContainsAny(line, "\n") || len(line) > limit {
		t.Fatalf("line %q: a line break inside or over the limit %d", line, limit)
	}
	shown := Sanitize(line)
	if !utf8.ValidString(shown) || strings.IndexFunc(shown, unicode.IsControl) >= 0 || strings.IndexFunc(shown, isBidiControl) >= 0 {
		t.Fatalf("Sanitize(%q) = %q: still unsafe to print", line, shown)
	}
}
