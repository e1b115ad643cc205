package chat

import (
	"bytes"
	"slices"
	"testing"
)

func TestEditor(t *testing.T) {
	tests := []struct {
		name   string
		keys   []string // fed one by one, as separate reads
		lines  []string
		eof    bool
		buffer string // what is left on the line
	}{
		{"enter", []string{"hello\r"}, []string{"hello"}, false, ""},
		{"line feed", []string{"hello\n"}, []string{"hello"}, false, ""},
		{"two lines in one read", []string{"a\rb\r"}, []string{"a", "b"}, false, ""},
		{"backspace", []string{"helo\x7f\x7fllo\r"}, []string{"hello"}, false, ""},
		{"ctrl-h", []string{"ab\x08c\r"}, []string{"ac"}, false, ""},
		{"backspace on empty line", []string{"\x7fa\r"}, []string{"a"}, false, ""},
		{"ctrl-u", []string{"garbage\x15ok\r"}, []string{"ok"}, false, ""},
		{"ctrl-w", []string{"ab cd  \x17ef\r"}, []string{"ab ef"}, false, ""},
		{"cursor keys ignored", []string{"a\x1b[Db\x1b[A\x1bOC\r"}, []string{"ab"}, false, ""},
		{"escape split across reads", []string{"a\x1b", "[1;5", "Db\r"}, []string{"ab"}, false, ""},
		{"alt key ignored", []string{"a\x1bxb\r"}, []string{"ab"}, false, ""},
		{"utf-8 split across reads", []string{"gr\xc3", "\xbc\xc3\x9fe\r"}, []string{"grüße"}, false, ""},
		{"backspace removes a whole rune", []string{"☕x\x7f\x7fy\r"}, []string{"y"}, false, ""},
		{"tab becomes a space", []string{"a\tb\r"}, []string{"a b"}, false, ""},
		{"other controls ignored", []string{"a\x01\x02\x07b\r"}, []string{"ab"}, false, ""},
		{"ctrl-d on empty line ends input", []string{"x\r\x04more"}, []string{"x"}, true, ""},
		{"ctrl-d with text is ignored", []string{"ab\x04c"}, nil, false, "abc"},
		{"unfinished line", []string{"typing"}, nil, false, "typing"},
		{"input beyond the cap is refused", []string{"abcdefghij\r"}, []string{"abcdefgh"}, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := &editor{prompt: "> ", maxBytes: 8, width: func() int { return 0 }}
			var out bytes.Buffer
			var lines []string
			eof := false
			for _, k := range tc.keys {
				l, end := e.feed([]byte(k), &out)
				lines = append(lines, l...)
				if end {
					eof = true
					break
				}
			}
			if !slices.Equal(lines, tc.lines) || eof != tc.eof || string(e.buf) != tc.buffer {
				t.Fatalf("lines %q, eof %v, buffer %q; want %q, %v, %q", lines, eof, string(e.buf), tc.lines, tc.eof, tc.buffer)
			}
		})
	}
}

func TestEditorEcho(t *testing.T) {
	e := &editor{prompt: "> ", maxBytes: 100, width: func() int { return 0 }}
	var out bytes.Buffer
	e.feed([]byte("ab\x7f"), &out)
	// Typing echoes; Backspace erases the row and redraws prompt and line.
	if got, want := out.String(), "ab\r\x1b[J> a"; got != want {
		t.Fatalf("echo %q, want %q", got, want)
	}

	// With a known width, erase moves up over the wrapped rows first.
	e = &editor{prompt: "> ", maxBytes: 100, width: func() int { return 10 }}
	out.Reset()
	e.feed([]byte("0123456789abcdef"), &out) // 2+16 = 18 columns: two rows
	out.Reset()
	e.erase(&out)
	if got, want := out.String(), "\r\x1b[1A\x1b[J"; got != want {
		t.Fatalf("erase of two rows %q, want %q", got, want)
	}

	// Past the cap, keys ring the bell instead of being echoed.
	e = &editor{prompt: "> ", maxBytes: 2, width: func() int { return 0 }}
	out.Reset()
	e.feed([]byte("abc"), &out)
	if got, want := out.String(), "ab\a"; got != want {
		t.Fatalf("echo past the cap %q, want %q", got, want)
	}
}
