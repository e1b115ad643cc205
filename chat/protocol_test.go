package chat

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestLineReader(t *testing.T) {
	type step struct {
		line string
		err  string // "" for none
	}
	tests := []struct {
		name  string
		input string
		max   int
		want  []step
	}{
		{"plain lines", "a\nbb\n", 8, []step{{"a", ""}, {"bb", ""}, {"", "EOF"}}},
		{"crlf", "a\r\nb\r\n", 8, []step{{"a", ""}, {"b", ""}, {"", "EOF"}}},
		{"last line without newline", "a\nlast", 8, []step{{"a", ""}, {"last", ""}, {"", "EOF"}}},
		{"empty lines", "\n\nx\n", 8, []step{{"", ""}, {"", ""}, {"x", ""}, {"", "EOF"}}},
		{"exactly the limit", "12345678\n", 8, []step{{"12345678", ""}, {"", "EOF"}}},
		{"exactly the limit with crlf", "12345678\r\n", 8, []step{{"12345678", ""}, {"", "EOF"}}},
		{"one over the limit", "123456789\nok\n", 8, []step{{"", "line too long: 9 bytes, the limit is 8"}, {"ok", ""}, {"", "EOF"}}},
		{"far over the limit", strings.Repeat("x", 100) + "\nok\n", 8, []step{{"", "line too long: 100 bytes, the limit is 8"}, {"ok", ""}, {"", "EOF"}}},
		{"over the limit at EOF", strings.Repeat("x", 100), 8, []step{{"", "line too long: 100 bytes, the limit is 8"}, {"", "EOF"}}},
		{"empty input", "", 8, []step{{"", "EOF"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lr := newLineReader(strings.NewReader(tc.input), tc.max)
			for i, w := range tc.want {
				got, err := lr.next(tc.max)
				gotErr := ""
				if err != nil {
					gotErr = err.Error()
				}
				if got != w.line || gotErr != w.err {
					t.Fatalf("step %d: got (%q, %q), want (%q, %q)", i, got, gotErr, w.line, w.err)
				}
				if strings.HasPrefix(w.err, "line too long") && !errors.Is(err, ErrLineTooLong) {
					t.Fatalf("step %d: %v does not wrap ErrLineTooLong", i, err)
				}
				if w.err == "EOF" && err != io.EOF {
					t.Fatalf("step %d: want io.EOF itself, got %v", i, err)
				}
			}
		})
	}
}

func TestSanitize(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain", "hello, world", "hello, world"},
		{"unicode", "grüße ☕ 你好", "grüße ☕ 你好"},
		{"escape sequence", "\x1b[2J\x1b[31mred", "\uFFFD[2J\uFFFD[31mred"},
		{"bell and backspace", "a\a\bb", "a\uFFFD\uFFFDb"},
		{"c1 control", "a\u009bb", "a\uFFFDb"},
		{"tab", "a\tb", "a b"},
		{"invalid utf-8", "a\xff\xfeb", "a\uFFFDb"},
		{"bidi override", "abc\u202edcba\u202c!", "abcdcba!"},
		{"bidi isolate", "\u2066x\u2069", "x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Sanitize(tc.in); got != tc.want {
				t.Fatalf("Sanitize(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestRoomKey(t *testing.T) {
	a, b := roomKey("lobby"), roomKey("Lobby")
	if a == b {
		t.Fatal("rooms differing in case share a key")
	}
	if len(a) != 64 || strings.Contains(a, "lobby") {
		t.Fatalf("room key %q: want 64 hex digits that do not reveal the room", a)
	}
	if roomKey("lobby") != a {
		t.Fatal("room key not stable")
	}
}

func TestShortID(t *testing.T) {
	p, err := peer.Decode("12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA")
	if err != nil {
		t.Fatal(err)
	}
	if got := ShortID(p); got != "AJU5SA" {
		t.Fatalf("ShortID = %q, want %q", got, "AJU5SA")
	}
}

func TestNicknames(t *testing.T) {
	for _, ok := range []string{"", "alice", "Zoë", "dev team"} {
		if err := ValidateNick(ok); err != nil {
			t.Errorf("ValidateNick(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"   ", "a\nb", "bell\a", strings.Repeat("x", MaxNickBytes+1), "rtl\u202eevil"} {
		if err := ValidateNick(bad); err == nil {
			t.Errorf("ValidateNick(%q) accepted it", bad)
		}
	}
	for in, want := range map[string]string{
		" alice ":                         "alice",
		"a\x1bb":                          "a\uFFFDb",
		strings.Repeat("é", MaxNickBytes): strings.Repeat("é", MaxNickBytes/2),
	} {
		if got := cleanNick(in); got != want {
			t.Errorf("cleanNick(%q) = %q, want %q", in, got, want)
		}
	}
}
