package chat

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// runTerminal runs a Terminal for room r (a room from newBareRoom: the
// Terminal takes its events) on in, and returns its outputs and the channel
// Run's result arrives on.
func runTerminal(t *testing.T, ctx context.Context, r *testRoom, in io.Reader, opts ...TerminalOption) (out, errOut *syncBuffer, done <-chan error) {
	t.Helper()
	out, errOut = &syncBuffer{}, &syncBuffer{}
	term, err := NewTerminal(r.Room, in, out, errOut, opts...)
	if err != nil {
		t.Fatalf("NewTerminal: %v", err)
	}
	ch := make(chan error, 1)
	go func() { ch <- term.Run(ctx) }()
	return out, errOut, ch
}

// newBareRoom starts a room whose events nobody records, for a Terminal.
func newBareRoom(t *testing.T, name string) (r *testRoom, closeRoom func()) {
	t.Helper()
	h := newHost(t)
	room, err := New(h, name)
	if err != nil {
		t.Fatal(err)
	}
	if err := room.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { room.Close() })
	return &testRoom{Room: room, t: t}, func() { room.Close() }
}

func waitRun(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(waitLimit):
		t.Fatal("Run did not return")
		return nil
	}
}

// TestTerminalPipes drives the plain-line front end the way a script does.
func TestTerminalPipes(t *testing.T) {
	a, _ := newBareRoom(t, "pipes")
	hb := newHost(t)
	b := newRoom(t, hb, "pipes")
	in, inW := io.Pipe()
	out, errOut, done := runTerminal(t, context.Background(), a, in)
	t.Cleanup(func() { inW.Close() })

	connect(t, a.h, hb)
	b.waitJoined(a.Self())
	bs, as := ShortID(hb.ID()), ShortID(a.Self())
	out.waitFor(t, "* "+bs+" joined\n", "join")

	io.WriteString(inW, "hello b\n")
	b.waitMessage(a.Self(), "hello b")
	b.send("hello a")
	out.waitFor(t, bs+": hello a\n", "message")

	io.WriteString(inW, strings.Repeat("x", 5000)+"\n")
	errOut.waitFor(t, "* line too long: 5000 bytes, the limit is 4096: not sent\n", "refusal")
	io.WriteString(inW, "still here\n//slash\n/peers\n/bogus\n   \n")
	b.waitMessage(a.Self(), "still here")
	b.waitMessage(a.Self(), "/slash")
	out.waitFor(t, "* 1 peer in the room:\n*   "+bs+" "+hb.ID().String()+"\n", "peer list")
	errOut.waitFor(t, "* unknown command /bogus: try /help\n", "unknown command")

	io.WriteString(inW, "/quit\nafter quit\n")
	if err := waitRun(t, done); err != nil {
		t.Fatalf("Run after /quit: %v", err)
	}
	// Nothing typed after /quit was sent: a line sent now arrives, the
	// other one never came before it.
	if _, err := a.Send(context.Background(), "marker"); err != nil {
		t.Fatal(err)
	}
	b.waitMessage(a.Self(), "marker")
	if n := b.count(is(Message, a.Self(), "after quit")); n != 0 {
		t.Fatal("a line typed after /quit was sent")
	}
	if strings.Contains(out.String(), "> ") || strings.Contains(out.String(), "\x1b") {
		t.Fatalf("plain mode printed a prompt or an escape sequence:\n%q", out.String())
	}
	if strings.Contains(out.String(), as) {
		t.Fatalf("plain mode echoed our own lines:\n%s", out.String())
	}
	if strings.Contains(out.String()+errOut.String(), "xxxxxxxx") {
		t.Fatal("the refused line was printed or sent")
	}
}

func TestTerminalLeaveAnnounced(t *testing.T) {
	a, _ := newBareRoom(t, "leave")
	hb := newHost(t)
	b := newRoom(t, hb, "leave")
	in, inW := io.Pipe()
	out, _, done := runTerminal(t, context.Background(), a, in)
	t.Cleanup(func() { inW.Close() })
	connect(t, a.h, hb)
	out.waitFor(t, "* "+ShortID(hb.ID())+" joined\n", "join")
	b.Close()
	out.waitFor(t, "* "+ShortID(hb.ID())+" left\n", "leave")
	inW.Close() // EOF ends the session cleanly
	if err := waitRun(t, done); err != nil {
		t.Fatalf("Run after EOF: %v", err)
	}
	if n := strings.Count(out.String(), " joined\n"); n != 1 {
		t.Fatalf("%d joins printed, want 1:\n%s", n, out.String())
	}
}

func TestTerminalEmptyRoomAndEOF(t *testing.T) {
	a, _ := newBareRoom(t, "alone")
	_, errOut, done := runTerminal(t, context.Background(), a, strings.NewReader("anyone?\nlast line without newline"))
	if err := waitRun(t, done); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got, want := errOut.String(), strings.Repeat("* nobody else is in the room yet: not sent\n", 2); got != want {
		t.Fatalf("stderr %q, want %q", got, want)
	}
}

func TestTerminalInteractive(t *testing.T) {
	a, _ := newBareRoom(t, "tty")
	hb := newHost(t)
	b := newRoom(t, hb, "tty")
	in, inW := io.Pipe()
	out, _, done := runTerminal(t, context.Background(), a, in, Interactive(true), Color(true), Prompt("chat> "))
	t.Cleanup(func() { inW.Close() })
	connect(t, a.h, hb)
	out.waitFor(t, "chat> ", "prompt")
	out.waitFor(t, ShortID(hb.ID())+"\x1b[0m\x1b[2m joined\x1b[0m\n", "join")

	io.WriteString(inW, "hel\x7flo\x1b[A\r")
	b.waitMessage(a.Self(), "helo")
	// Our own line is shown back, with our label in colour.
	out.waitFor(t, ShortID(a.Self())+"\x1b[0m: helo\n", "own line")

	// A line arriving while we type is printed above the prompt, and what
	// was typed so far is drawn again after it.
	io.WriteString(inW, "typ")
	out.waitFor(t, "typ", "echo")
	b.send("incoming")
	out.waitFor(t, ShortID(hb.ID())+"\x1b[0m: incoming\nchat> typ", "redraw")

	io.WriteString(inW, "\x15\x04") // Ctrl-U, then Ctrl-D on the empty line
	if err := waitRun(t, done); err != nil {
		t.Fatalf("Run after Ctrl-D: %v", err)
	}
	if !strings.HasSuffix(out.String(), "\r\x1b[J") {
		t.Fatalf("the prompt was not removed at the end: %q", out.String()[max(0, len(out.String())-40):])
	}
}

// TestTerminalStops: Run returns when ctx ends even though nothing more
// arrives on its input (an *os.File: polled), and reports a closed room.
func TestTerminalStops(t *testing.T) {
	a, _ := newBareRoom(t, "stop")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pr.Close(); pw.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	_, _, done := runTerminal(t, ctx, a, pr)
	cancel()
	if err := waitRun(t, done); err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}

	b, closeB := newBareRoom(t, "stop2")
	_, _, done = runTerminal(t, context.Background(), b, pr)
	closeB()
	if err := waitRun(t, done); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run after the room closed: %v, want ErrClosed", err)
	}
}

func TestNewTerminalErrors(t *testing.T) {
	a, _ := newBareRoom(t, "opts")
	tests := []struct {
		name    string
		opts    []TerminalOption
		wantErr string
	}{
		{"prompt with newline", []TerminalOption{Prompt("a\nb> ")}, `prompt "a\nb> ": contains a control character`},
		{"prompt with escape", []TerminalOption{Prompt("\x1b[31m> ")}, `prompt "\x1b[31m> ": contains a control character`},
		{"ok", []TerminalOption{Prompt("» "), Interactive(true), Color(false)}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewTerminal(a.Room, strings.NewReader(""), io.Discard, io.Discard, tc.opts...)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.wantErr {
				t.Fatalf("error %q, want %q", got, tc.wantErr)
			}
		})
	}
	if _, err := NewTerminal(nil, nil, nil, nil); err == nil || err.Error() != "chat terminal needs a room, an input and two outputs" {
		t.Fatalf("NewTerminal(nil...) error = %v", err)
	}
}
