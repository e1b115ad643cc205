package chat

import (
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Keys the editor knows.
const (
	keyCtrlD     = 0x04
	keyBackspace = 0x08
	keyTab       = 0x09
	keyLF        = 0x0a
	keyCtrlL     = 0x0c
	keyCR        = 0x0d
	keyCtrlU     = 0x15
	keyCtrlW     = 0x17
	keyEsc       = 0x1b
	keyDel       = 0x7f
)

// Escape-sequence states of the editor.
const (
	escNone = iota
	escStart
	escCSI // ESC [ ... final byte
	escSS3 // ESC O x
)

// editor is the line being typed at a prompt, for a terminal without line
// buffering or echo: it echoes what is typed, handles Backspace, Ctrl-U
// (erase the line), Ctrl-W (erase a word) and Ctrl-D (end of input on an
// empty line), ignores cursor keys and other escape sequences, and can erase
// and redraw itself so other lines can be printed above it. It does no
// locking: Terminal serialises its use with everything else it prints.
type editor struct {
	prompt   string
	buf      []rune
	maxBytes int        // input beyond this many bytes is refused with a bell
	width    func() int // terminal columns, 0 if unknown
	partial  []byte     // the start of a UTF-8 sequence split between reads
	esc      int
}

// feed processes typed bytes, echoing to w, and returns the lines completed
// with Enter and whether Ctrl-D asked to end the input.
func (e *editor) feed(b []byte, w io.Writer) (lines []string, eof bool) {
	if len(e.partial) > 0 {
		b = append(e.partial, b...)
		e.partial = nil
	}
	for len(b) > 0 {
		c := b[0]
		if e.esc != escNone {
			e.escape(c)
			b = b[1:]
			continue
		}
		if c < utf8.RuneSelf {
			b = b[1:]
			switch c {
			case keyCR, keyLF:
				lines = append(lines, string(e.buf))
				e.erase(w)
				e.buf = e.buf[:0]
				e.draw(w)
			case keyCtrlD:
				if len(e.buf) == 0 {
					return lines, true
				}
			case keyBackspace, keyDel:
				if len(e.buf) > 0 {
					e.erase(w)
					e.buf = e.buf[:len(e.buf)-1]
					e.draw(w)
				}
			case keyCtrlU:
				e.erase(w)
				e.buf = e.buf[:0]
				e.draw(w)
			case keyCtrlW:
				e.erase(w)
				e.buf = deleteWord(e.buf)
				e.draw(w)
			case keyCtrlL:
				e.erase(w)
				e.draw(w)
			case keyEsc:
				e.esc = escStart
			case keyTab:
				e.insert(' ', w)
			default:
				if c >= ' ' && c != keyDel {
					e.insert(rune(c), w)
				}
			}
			continue
		}
		if !utf8.FullRune(b) {
			e.partial = append([]byte(nil), b...)
			break
		}
		r, n := utf8.DecodeRune(b)
		b = b[n:]
		if r != utf8.RuneError && unicode.IsPrint(r) {
			e.insert(r, w)
		}
	}
	return lines, false
}

// escape consumes one byte of an escape sequence (a cursor key, say).
func (e *editor) escape(c byte) {
	switch e.esc {
	case escStart:
		switch c {
		case '[':
			e.esc = escCSI
		case 'O':
			e.esc = escSS3
		default:
			e.esc = escNone // Alt+key: ignored
		}
	case escCSI:
		if c >= 0x40 && c <= 0x7e {
			e.esc = escNone
		}
	default:
		e.esc = escNone
	}
}

// insert appends r to the line and echoes it, or rings the bell when the
// line is as long as it may get.
func (e *editor) insert(r rune, w io.Writer) {
	if e.bytes()+utf8.RuneLen(r) > e.maxBytes {
		io.WriteString(w, "\a")
		return
	}
	e.buf = append(e.buf, r)
	io.WriteString(w, string(r))
}

func (e *editor) bytes() int {
	n := 0
	for _, r := range e.buf {
		n += utf8.RuneLen(r)
	}
	return n
}

// draw prints the prompt and the line; the cursor ends after them.
func (e *editor) draw(w io.Writer) {
	io.WriteString(w, e.prompt+string(e.buf))
}

// erase removes the prompt and the line from the screen, wrapped rows
// included, leaving the cursor at the start of an empty row.
func (e *editor) erase(w io.Writer) {
	up := 0
	if cols := e.width(); cols > 0 {
		if n := utf8.RuneCountInString(e.prompt) + len(e.buf); n > 0 {
			up = (n - 1) / cols
		}
	}
	var b strings.Builder
	b.WriteString("\r")
	if up > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", up)
	}
	b.WriteString("\x1b[J")
	io.WriteString(w, b.String())
}

// deleteWord removes the last word of buf and the spaces after it.
func deleteWord(buf []rune) []rune {
	i := len(buf)
	for i > 0 && buf[i-1] == ' ' {
		i--
	}
	for i > 0 && buf[i-1] != ' ' {
		i--
	}
	return buf[:i]
}
