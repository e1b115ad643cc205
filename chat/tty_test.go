package chat

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// tmuxSession is a detached tmux server of the test's own (its own socket),
// killed at the end of the test together with what runs in it.
type tmuxSession struct {
	t    *testing.T
	bin  string
	sock string
}

func (s *tmuxSession) run(args ...string) string {
	s.t.Helper()
	cmd := exec.Command(s.bin, append([]string{"-S", s.sock}, args...)...)
	cmd.Env = testEnv(s.t)
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// screen returns the visible pane, trailing blank lines removed; with
// escapes, including the colour escape sequences.
func (s *tmuxSession) screen(escapes bool) string {
	args := []string{"capture-pane", "-p", "-t", "chat"}
	if escapes {
		args = append(args, "-e")
	}
	return strings.TrimRight(s.run(args...), "\n ")
}

// waitScreen waits until the pane matches re and returns the submatches.
func (s *tmuxSession) waitScreen(re *regexp.Regexp, what string) []string {
	s.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		scr := s.screen(false)
		if m := re.FindStringSubmatch(scr); m != nil {
			return m
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("the terminal never showed %s; screen:\n%s", what, scr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// keys types text literally, or named keys (Enter, BSpace, C-d) with literal false.
func (s *tmuxSession) keys(literal bool, keys ...string) {
	s.t.Helper()
	args := []string{"send-keys", "-t", "chat"}
	if literal {
		args = append(args, "-l")
	}
	s.run(append(args, keys...)...)
}

// lastLine is the last non-blank line of the screen.
func lastLine(screen string) string {
	lines := strings.Split(strings.TrimRight(screen, "\n "), "\n")
	return strings.TrimRight(lines[len(lines)-1], " ")
}

// TestE2ETerminal drives `p2pd chat` in a real terminal (tmux) against a
// chat on pipes: the prompt, line editing, colour, lines arriving while
// typing, /peers, Ctrl-D leaving with exit code 0 and the terminal's mode
// restored.
func TestE2ETerminal(t *testing.T) {
	bin := needBinary(t)
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		t.Skip("tmux is not installed (apt-get install tmux): cannot drive a real terminal")
	}
	_, boot := startBootstrap(t, bin)
	const room = "tty-room"
	peer := startChat(t, bin, "pipe-chat", room, boot)

	dir := t.TempDir()
	s := &tmuxSession{t: t, bin: tmux, sock: filepath.Join(dir, "tmux.sock")}
	// The shell records the terminal mode before and after, and the exit code.
	script := `stty -g > before; "$0" "$@"; echo $? > rc; stty -g > after; exec sleep 600`
	args := append([]string{"new-session", "-d", "-s", "chat", "-x", "120", "-y", "30", "-c", dir,
		"sh", "-c", script, bin}, chatArgs(room, boot)...)
	s.run(args...)
	t.Cleanup(func() {
		exec.Command(tmux, "-S", s.sock, "kill-server").Run()
	})

	m := s.waitScreen(regexp.MustCompile(`\* you are (\w+) \(`), "the banner")
	me := m[1]
	peer.waitOut("* " + me + " joined")
	s.waitScreen(regexp.MustCompile(`(?m)^\* `+peer.short+` joined$`), "the peer joining")
	// (capture-pane drops the blank that ends the prompt)
	s.waitScreen(regexp.MustCompile(`(?m)^tty-room>$`), "the prompt")

	// Typing, with a correction, sends one line; it is shown back as ours.
	s.keys(true, "helo")
	s.keys(false, "BSpace")
	s.keys(true, "lo from the terminal")
	s.keys(false, "Left", "Enter") // a cursor key is ignored, not inserted
	peer.waitOut(me + ": hello from the terminal")
	s.waitScreen(regexp.MustCompile(`(?m)^`+me+`: hello from the terminal$`), "our own line")

	// A line arriving while we type goes above the prompt, and the line
	// being typed is drawn again below it.
	s.keys(true, "half a thou")
	s.waitScreen(regexp.MustCompile(`(?m)^tty-room> half a thou$`), "the line being typed")
	peer.write("hello from the pipe\n")
	s.waitScreen(regexp.MustCompile(`(?m)^`+peer.short+`: hello from the pipe\ntty-room> half a thou$`), "the peer's line above the prompt")
	if got := lastLine(s.screen(false)); got != "tty-room> half a thou" {
		t.Fatalf("last line %q, want the prompt with what was typed", got)
	}
	s.keys(true, "ght")
	s.keys(false, "Enter")
	peer.waitOut(me + ": half a thought")

	// Colour: the peer's short ID is wrapped in a colour sequence.
	if scr := s.screen(true); !regexp.MustCompile(`\x1b\[[0-9;]*3[1-6]m` + peer.short).MatchString(scr) {
		t.Errorf("no colour around the peer's ID on the terminal:\n%q", scr)
	}

	s.keys(true, "/peers")
	s.keys(false, "Enter")
	s.waitScreen(regexp.MustCompile(`(?m)^\*   `+peer.short+` `+peer.id+`$`), "the /peers list")

	// Ctrl-D on an empty line leaves: exit code 0, terminal mode restored.
	s.keys(false, "C-d")
	peer.waitOut("* " + me + " left")
	rc := waitFile(t, filepath.Join(dir, "after"), filepath.Join(dir, "rc"))
	if rc != "0" {
		t.Fatalf("chat exit code %s, want 0", rc)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "before"))
	after, _ := os.ReadFile(filepath.Join(dir, "after"))
	if len(before) == 0 || string(before) != string(after) {
		t.Fatalf("terminal mode not restored:\nbefore %s\nafter  %s", before, after)
	}
	peer.stdin.Close()
	peer.waitExit()
}

// waitFile waits until marker exists and returns the trimmed content of file.
func waitFile(t *testing.T, marker, file string) string {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		if st, err := os.Stat(marker); err == nil && st.Size() > 0 {
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			return strings.TrimSpace(string(b))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared", marker)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
