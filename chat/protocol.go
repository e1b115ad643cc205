package chat

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/protocol"
)

// ProtocolID is the libp2p protocol of a chat session.
const ProtocolID protocol.ID = "/p2pd/chat/1.0.0"

// ProtocolNickID is ProtocolID with nicknames: after its handshake line
// each side sends "nick <name>\n" (the name may be empty). A room speaks
// both and opens sessions with this one when the peer does.
const ProtocolNickID protocol.ID = "/p2pd/chat/1.1.0"

// MaxNickBytes is the longest nickname; a longer one received is cut.
const MaxNickBytes = 32

// nickPrefix starts the nickname line of ProtocolNickID.
const nickPrefix = "nick "

// ValidateNick checks a nickname given to Nick: at most MaxNickBytes of
// UTF-8 without control characters or line breaks, not only spaces.
func ValidateNick(nick string) error {
	switch {
	case len(nick) > MaxNickBytes:
		return fmt.Errorf("nickname %q: longer than %d bytes", nick, MaxNickBytes)
	case nick != Sanitize(nick) || strings.ContainsAny(nick, "\n\r"):
		return fmt.Errorf("nickname %q: contains control characters", nick)
	case nick != "" && strings.TrimSpace(nick) == "":
		return fmt.Errorf("nickname %q: only spaces", nick)
	}
	return nil
}

// cleanNick is a received nickname as shown: sanitized, trimmed and cut to
// MaxNickBytes (on a rune boundary).
func cleanNick(nick string) string {
	nick = strings.TrimSpace(Sanitize(nick))
	for len(nick) > MaxNickBytes {
		_, size := utf8.DecodeLastRuneInString(nick)
		nick = nick[:len(nick)-size]
	}
	return nick
}

// Handshake lines (see the package documentation).
const (
	helloPrefix   = "hello "
	welcomeLine   = "welcome"
	refusedPrefix = "refused "
	// handshakeLineMax bounds the handshake lines, whatever the message
	// size limit.
	handshakeLineMax = 256
	// reasonOtherRoom is what a peer in another room answers.
	reasonOtherRoom = "another room"
)

// roomKey is what a hello line carries for room: a hash, so the room string
// itself is revealed only to peers who know it already.
func roomKey(room string) string {
	sum := sha256.Sum256([]byte("p2pd-chat-room\x00" + room))
	return hex.EncodeToString(sum[:])
}

// lineReader reads "\n"-terminated lines of bounded size from a stream or
// from stdin.
type lineReader struct {
	br *bufio.Reader
}

// newLineReader returns a reader for lines of at most max bytes.
func newLineReader(r io.Reader, max int) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, max+2)} // room for "\r\n"
}

// next returns the next line without its "\n" or "\r\n". A line of more than
// limit bytes (limit at most the max given to newLineReader) is consumed and
// reported as an error wrapping ErrLineTooLong; reading may go on after it.
// A last line without a line break is returned as a line, then io.EOF.
func (l *lineReader) next(limit int) (string, error) {
	line, err := l.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		n := len(line)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = l.br.ReadSlice('\n')
			n += len(line)
		}
		if err != nil && err != io.EOF {
			return "", err
		}
		if err == nil {
			n -= len(lineEnd(line))
		}
		return "", tooLong(n, limit)
	}
	if err != nil && (err != io.EOF || len(line) == 0) {
		return "", err
	}
	s := string(line[:len(line)-len(lineEnd(line))])
	if len(s) > limit {
		return "", tooLong(len(s), limit)
	}
	return s, nil
}

// lineEnd returns the "\n" or "\r\n" line ends with, if any.
func lineEnd(line []byte) []byte {
	n := len(line)
	switch {
	case n >= 2 && line[n-2] == '\r' && line[n-1] == '\n':
		return line[n-2:]
	case n >= 1 && line[n-1] == '\n':
		return line[n-1:]
	}
	return nil
}

func tooLong(n, limit int) error {
	return fmt.Errorf("%w: %d bytes, the limit is %d", ErrLineTooLong, n, limit)
}

// checkMessage reports why text cannot be sent as one message, if it cannot.
func checkMessage(text string, limit int) error {
	switch {
	case text == "":
		return ErrEmpty
	case strings.ContainsAny(text, "\r\n"):
		return ErrLineBreak
	case len(text) > limit:
		return tooLong(len(text), limit)
	}
	return nil
}

// Sanitize makes text received from a peer safe to print on a terminal:
// invalid UTF-8 and control characters (escape sequences included) become
// U+FFFD, a tab becomes a space, and bidirectional-override characters,
// which could make a line read as something else, are dropped. Room applies
// it to every message it reports.
func Sanitize(text string) string {
	text = strings.ToValidUTF8(text, "\uFFFD")
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t':
			return ' '
		case unicode.IsControl(r):
			return '\uFFFD'
		case isBidiControl(r):
			return -1
		}
		return r
	}, text)
}

// isBidiControl reports the characters that change the direction of the
// text around them.
func isBidiControl(r rune) bool {
	return r == 0x061C || r == 0x200E || r == 0x200F ||
		(r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069)
}
