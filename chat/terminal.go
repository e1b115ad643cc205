package chat

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TerminalOption configures a Terminal. Options check their own arguments;
// NewTerminal reports the first error.
type TerminalOption func(*termConfig) error

// termConfig is the validated configuration of a Terminal.
type termConfig struct {
	interactive bool
	color       bool
	prompt      string
	promptSet   bool
	waitPeers   int
	waitFor     time.Duration
}

// WaitPeers makes Run hold the input back until n peers are in the room
// (joined and not left), for at most timeout; then Run fails with an error
// wrapping ErrWaitTimeout. Lines typed or piped meanwhile are sent once
// the room is full enough. 0 (the default) sends at once. It is for
// scripts whose input must reach a known set of peers.
func WaitPeers(n int, timeout time.Duration) TerminalOption {
	return func(c *termConfig) error {
		if n < 0 {
			return fmt.Errorf("waiting for %d peers: want 0 or more", n)
		}
		if n > 0 && timeout <= 0 {
			return fmt.Errorf("waiting for %d peers: the timeout must be positive", n)
		}
		c.waitPeers, c.waitFor = n, timeout
		return nil
	}
}

// Interactive turns on the interactive mode (default off): a prompt, line
// editing, your own lines shown back as "<short id>: text", and a help line
// at the start. If the input is a terminal, Run switches it to the mode the
// line editor needs (no line buffering, no echo; Ctrl-C still interrupts)
// and restores it when it returns. Off, the Terminal reads and prints plain
// lines only, which is what scripts want.
func Interactive(on bool) TerminalOption {
	return func(c *termConfig) error {
		c.interactive = on
		return nil
	}
}

// Color turns on ANSI colours (default off): each peer's short ID gets a
// colour of its own, and announcements are dimmed.
func Color(on bool) TerminalOption {
	return func(c *termConfig) error {
		c.color = on
		return nil
	}
}

// Prompt sets the interactive prompt (default "<room>> "). It must be one
// line without control characters.
func Prompt(p string) TerminalOption {
	return func(c *termConfig) error {
		if strings.ContainsFunc(p, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			return fmt.Errorf("prompt %q: contains a control character", p)
		}
		c.prompt, c.promptSet = p, true
		return nil
	}
}

// Terminal is the chat's front end: it reads lines from an input, sends
// them to a Room, and prints what happens in the room. Output, one line per
// event:
//
//	<short id>: <text>     a message (to out)
//	* <short id> joined    (to out)
//	* <short id> left      (to out)
//	* ...                  refusals, hints and errors (to errOut)
//
// Commands: /peers lists the room, /quit leaves, /help lists the commands;
// a line starting with "//" sends the rest starting with "/".
type Terminal struct {
	room        *Room
	in          io.Reader
	out, errOut io.Writer
	cfg         termConfig
	width       func() int

	// mu guards writes to out and errOut and the editor, so that lines
	// printed by the event side and the prompt being typed on the input side
	// never mix.
	mu sync.Mutex
	ed *editor // nil unless interactive
}

// NewTerminal returns a front end for r that reads in and prints to out and
// errOut. It starts nothing.
func NewTerminal(r *Room, in io.Reader, out, errOut io.Writer, opts ...TerminalOption) (*Terminal, error) {
	if r == nil || in == nil || out == nil || errOut == nil {
		return nil, errors.New("chat terminal needs a room, an input and two outputs")
	}
	cfg := termConfig{}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if !cfg.promptSet {
		cfg.prompt = r.Name() + "> "
	}
	t := &Terminal{room: r, in: in, out: out, errOut: errOut, cfg: cfg, width: func() int { return 0 }}
	if f, ok := out.(*os.File); ok {
		t.width = func() int { return termWidth(f) }
	}
	if cfg.interactive {
		t.ed = &editor{prompt: cfg.prompt, maxBytes: 4 * r.MaxLineBytes(), width: t.width}
	}
	return t, nil
}

// inputLine is one line read from the input, or why reading failed.
type inputLine struct {
	text string
	err  error
}

// Run runs the front end until the input ends (EOF, or Ctrl-D at an empty
// prompt), the user types /quit, or ctx ends: all three return nil. It
// returns ErrClosed if the room closes first. An *os.File input is polled
// so that Run can stop reading it when it returns; any other input must
// return from Read (or be closed by the caller) before Run can return.
func (t *Terminal) Run(ctx context.Context) (err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	in := t.in
	if f, ok := in.(*os.File); ok {
		if t.cfg.interactive && IsTerminal(f) {
			restore, merr := editMode(f)
			if merr != nil {
				return merr
			}
			defer func() {
				if rerr := restore(); rerr != nil && err == nil {
					err = rerr
				}
			}()
		}
		in = newFileReader(f, ctx.Done())
	}
	if t.ed != nil {
		t.notice(t.out, "type a line and press Enter to send it; /peers lists the room, /quit or Ctrl-D leaves")
		defer t.endPrompt()
	}

	lines := make(chan inputLine)
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel (deferred later, so run earlier)
	defer cancel()
	wg.Go(func() {
		defer close(lines)
		if t.ed != nil {
			t.readKeys(ctx, in, lines)
		} else {
			t.readLines(ctx, in, lines)
		}
	})

	events := t.room.Events()
	// While waiting for peers (WaitPeers), input is not taken: in stays
	// nil until enough peers are in the room.
	in2, present := lines, map[peer.ID]bool{}
	var waitTimeout <-chan time.Time
	if t.cfg.waitPeers > 0 {
		in2 = nil
		timer := time.NewTimer(t.cfg.waitFor)
		defer timer.Stop()
		waitTimeout = timer.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				return ErrClosed
			}
			t.show(ev)
			switch ev.Kind {
			case PeerJoined:
				present[ev.Peer] = true
			case PeerLeft:
				delete(present, ev.Peer)
			}
			if in2 == nil && len(present) >= t.cfg.waitPeers {
				in2, waitTimeout = lines, nil
			}
		case <-waitTimeout:
			return fmt.Errorf("%w: %d of the %d peers asked for joined within %s", ErrWaitTimeout,
				len(present), t.cfg.waitPeers, t.cfg.waitFor)
		case l, ok := <-in2:
			if !ok {
				return nil
			}
			if quit := t.handle(ctx, l); quit {
				return nil
			}
		}
	}
}

// readLines reads plain lines (non-interactive mode) until the input ends.
func (t *Terminal) readLines(ctx context.Context, in io.Reader, out chan<- inputLine) {
	lr := newLineReader(in, t.room.MaxLineBytes())
	for {
		text, err := lr.next(t.room.MaxLineBytes())
		if err != nil && !errors.Is(err, ErrLineTooLong) {
			if !errors.Is(err, io.EOF) && !errors.Is(err, errStopped) {
				t.notice(t.errOut, fmt.Sprintf("cannot read input: %v", err))
			}
			return
		}
		select {
		case out <- inputLine{text: text, err: err}:
		case <-ctx.Done():
			return
		}
	}
}

// readKeys runs the line editor on the input until it ends or Ctrl-D.
func (t *Terminal) readKeys(ctx context.Context, in io.Reader, out chan<- inputLine) {
	buf := make([]byte, 256)
	for {
		n, err := in.Read(buf)
		if n > 0 {
			t.mu.Lock()
			lines, eof := t.ed.feed(buf[:n], t.out)
			t.mu.Unlock()
			for _, l := range lines {
				select {
				case out <- inputLine{text: l}:
				case <-ctx.Done():
					return
				}
			}
			if eof {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, errStopped) {
				t.notice(t.errOut, fmt.Sprintf("cannot read input: %v", err))
			}
			return
		}
	}
}

// handle acts on one input line; it reports whether the user asked to quit.
func (t *Terminal) handle(ctx context.Context, l inputLine) (quit bool) {
	if l.err != nil { // too long: refused, but the session goes on
		t.notice(t.errOut, fmt.Sprintf("%v: not sent", l.err))
		return false
	}
	text := l.text
	if strings.TrimSpace(text) == "" {
		return false
	}
	if strings.HasPrefix(text, "/") && !strings.HasPrefix(text, "//") {
		cmd, _, _ := strings.Cut(strings.TrimSpace(text), " ")
		switch cmd {
		case "/quit", "/exit":
			return true
		case "/peers":
			t.listPeers(ctx)
		case "/help":
			t.notice(t.out, "commands: /peers lists who is in the room, /quit leaves (so does Ctrl-D or the end of the input), /help shows this; start a line with // to send a line that starts with /")
		default:
			t.notice(t.errOut, fmt.Sprintf("unknown command %s: try /help", cmd))
		}
		return false
	}
	if strings.HasPrefix(text, "//") {
		text = text[1:]
	}
	n, err := t.room.Send(ctx, text)
	switch {
	case err != nil:
		t.notice(t.errOut, fmt.Sprintf("%v: not sent", err))
	case n == 0:
		t.notice(t.errOut, "nobody else is in the room yet: not sent")
	case t.ed != nil:
		t.println(t.out, t.label(t.room.Self(), t.room.Nick())+": "+Sanitize(text))
	}
	return false
}

// listPeers prints who is in the room.
func (t *Terminal) listPeers(ctx context.Context) {
	peers, err := t.room.Peers(ctx)
	if err != nil {
		t.notice(t.errOut, fmt.Sprintf("cannot list the room: %v", err))
		return
	}
	if len(peers) == 0 {
		t.notice(t.out, "nobody else is in the room yet")
		return
	}
	word := "peers"
	if len(peers) == 1 {
		word = "peer"
	}
	t.notice(t.out, fmt.Sprintf("%d %s in the room:", len(peers), word))
	for _, p := range peers {
		t.println(t.out, t.dim("*   ")+t.label(p, "")+t.dim(" "+p.String()))
	}
}

// show prints one room event.
func (t *Terminal) show(ev Event) {
	switch ev.Kind {
	case Message:
		t.println(t.out, t.label(ev.Peer, ev.Nick)+": "+ev.Text)
	case PeerJoined:
		t.println(t.out, t.dim("* ")+t.label(ev.Peer, ev.Nick)+t.dim(" joined"))
	case PeerLeft:
		t.println(t.out, t.dim("* ")+t.label(ev.Peer, ev.Nick)+t.dim(" left"))
	case Notice:
		t.println(t.errOut, t.dim("* ")+t.label(ev.Peer, ev.Nick)+t.dim(": "+errText(ev.Err)))
	}
}

func errText(err error) string {
	if err == nil {
		return "(no details)"
	}
	return err.Error()
}

// Notice prints "* text" on errOut, above the prompt if there is one. It is
// safe to call from any goroutine, while Run runs or not.
func (t *Terminal) Notice(text string) {
	t.notice(t.errOut, text)
}

// notice prints "* text", dimmed.
func (t *Terminal) notice(w io.Writer, text string) {
	t.println(w, t.dim("* "+text))
}

// println prints one line above the prompt (if any) and redraws the prompt.
func (t *Terminal) println(w io.Writer, line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ed == nil {
		fmt.Fprintln(w, line)
		return
	}
	t.ed.erase(t.out)
	fmt.Fprintln(w, line)
	t.ed.draw(t.out)
}

// endPrompt removes the prompt when Run ends, so the shell's prompt starts
// on a clean line.
func (t *Terminal) endPrompt() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ed.erase(t.out)
}

// ANSI colours for peer labels: red, green, yellow, blue, magenta, cyan.
var labelColors = []string{"31", "32", "33", "34", "35", "36"}

// label is p's short ID, after its nickname if it gave one ("alice
// (Yx9bQe)": the short ID stays, since anyone may take any nickname), in
// p's colour when colours are on.
func (t *Terminal) label(p peer.ID, nick string) string {
	s := ShortID(p)
	if nick != "" {
		s = nick + " (" + s + ")"
	}
	if !t.cfg.color {
		return s
	}
	h := fnv.New32a()
	h.Write([]byte(p))
	c := labelColors[h.Sum32()%uint32(len(labelColors))]
	if p == t.room.Self() {
		c = "1;" + c
	}
	return "\x1b[" + c + "m" + s + "\x1b[0m"
}

// dim returns s dimmed when colours are on.
func (t *Terminal) dim(s string) string {
	if !t.cfg.color {
		return s
	}
	return "\x1b[2m" + s + "\x1b[0m"
}
