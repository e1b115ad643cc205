package chat

import (
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestE2EThreeChats runs a bootstrap daemon and three `p2pd chat` processes
// on pipes, as a script would: all three see each other join (the third one
// joins late, under the identity of a repo), a line from each reaches the two
// others exactly once, one leaves with /quit and the others see it leave, a
// line over the size limit is refused with a message and the session goes
// on, and EOF ends a chat with exit code 0.
func TestE2EThreeChats(t *testing.T) {
	bin := needBinary(t)
	d, boot := startBootstrap(t, bin)

	const room = "e2e room"
	alice := startChat(t, bin, "alice", room, boot)
	bob := startChat(t, bin, "bob", room, boot)
	alice.waitOut("* " + bob.short + " joined")
	bob.waitOut("* " + alice.short + " joined")

	// carol comes late, with the identity of a repo.
	repoDir := t.TempDir() + "/carol"
	initOut, err := exec.Command(bin, "init", "--repo", repoDir).CombinedOutput()
	if err != nil {
		t.Fatalf("p2pd init: %v\n%s", err, initOut)
	}
	m := regexp.MustCompile(`(?m)^peer id: (\w+)$`).FindSubmatch(initOut)
	if m == nil {
		t.Fatalf("p2pd init printed no peer id:\n%s", initOut)
	}
	carol := startChat(t, bin, "carol", room, boot, "--repo", repoDir)
	if carol.id != string(m[1]) {
		t.Fatalf("carol chats as %s, want the repo's identity %s", carol.id, m[1])
	}
	chats := []*chatProc{alice, bob, carol}
	short := map[string]string{}
	for _, c := range chats {
		if other, dup := short[c.short]; dup {
			t.Fatalf("%s and %s share the short ID %s", other, c.name, c.short)
		}
		short[c.short] = c.name
	}

	// Everyone sees everyone else join.
	for _, c := range chats {
		for _, o := range chats {
			if o != c {
				c.waitOut("* " + o.short + " joined")
			}
		}
	}
	// A line from each reaches the two others.
	for _, c := range chats {
		c.write("hello from " + c.name + "\n")
	}
	for _, c := range chats {
		for _, o := range chats {
			if o != c {
				c.waitOut(o.short + ": hello from " + o.name)
			}
		}
	}

	// carol leaves with /quit; alice and bob see it.
	carol.write("/quit\n")
	carol.waitExit()
	alice.waitOut("* " + carol.short + " left")
	bob.waitOut("* " + carol.short + " left")

	// An over-long line is refused with a message; the session goes on.
	alice.write(strings.Repeat("x", 5000) + "\n")
	alice.waitErrLine("* line too long: 5000 bytes, the limit is 4096: not sent")
	alice.write("still talking\n")
	bob.waitOut(alice.short + ": still talking")

	bob.write("/peers\n")
	bob.waitOut("* 1 peer in the room:")
	bob.waitOut("*   " + alice.short + " " + alice.id)

	// EOF ends a chat cleanly.
	alice.stdin.Close()
	alice.waitExit()
	bob.waitOut("* " + alice.short + " left")
	bob.stdin.Close()
	bob.waitExit()

	// The daemon stops cleanly on SIGINT.
	d.cmd.Process.Signal(syscall.SIGINT)
	d.waitExit()

	// Exactly once, over the whole of each output.
	for _, c := range chats {
		for _, o := range chats {
			if o == c {
				if n := c.out.count(o.short + ": hello from " + o.name); n != 0 {
					t.Errorf("%s printed its own line %d times", c.name, n)
				}
				continue
			}
			for _, line := range []string{"* " + o.short + " joined", o.short + ": hello from " + o.name} {
				if n := c.out.count(line); n != 1 {
					t.Errorf("%s printed %q %d times, want once", c.name, line, n)
				}
			}
		}
	}
	wantLeft := map[*chatProc][]*chatProc{alice: {carol}, bob: {carol, alice}, carol: {}}
	for c, left := range wantLeft {
		got := 0
		for _, l := range c.out.snapshotLines() {
			if strings.HasSuffix(l, " left") {
				got++
			}
		}
		if got != len(left) {
			t.Errorf("%s printed %d leaves, want %d:\n%s", c.name, got, len(left), c.out)
		}
		for _, o := range left {
			if n := c.out.count("* " + o.short + " left"); n != 1 {
				t.Errorf("%s printed that %s left %d times, want once", c.name, o.name, n)
			}
		}
	}
	for _, c := range chats {
		all := c.out.String() + c.errOut.String()
		if strings.Contains(all, "xxxxxxxxxx") {
			t.Errorf("%s printed the refused line", c.name)
		}
		if strings.ContainsAny(all, "\x1b\r") {
			t.Errorf("%s printed escape sequences or carriage returns on pipes", c.name)
		}
	}
	if n := bob.out.count(fmt.Sprintf("%s: still talking", alice.short)); n != 1 {
		t.Errorf("bob printed alice's last line %d times, want once", n)
	}
}

func (l *lineLog) snapshotLines() []string {
	lines, _ := l.snapshot()
	return lines
}

// TestE2EUsageErrors checks what `p2pd chat` says about a wrong command
// line, before it touches the network.
func TestE2EUsageErrors(t *testing.T) {
	bin := needBinary(t)
	hint := "run `p2pd chat --help` for usage\n"
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"no room", nil, 2, "p2pd chat: missing --rendezvous STRING: the room to join\n" + hint},
		{"room with a newline", []string{"--rendezvous", "a\nb"}, 2, "p2pd chat: --rendezvous: invalid room name \"a\\nb\": contains a control character\n" + hint},
		{"extra argument", []string{"--rendezvous", "r", "extra"}, 2, "p2pd chat: unexpected argument \"extra\"\n" + hint},
		{"bad DHT mode", []string{"--rendezvous", "r", "--dht", "bogus"}, 2, "p2pd chat: invalid --dht value \"bogus\": want auto, server, client or off\n" + hint},
		{"bad DHT prefix", []string{"--rendezvous", "r", "--dht-prefix", "ipfs"}, 2, "p2pd chat: invalid --dht-prefix value \"ipfs\": a DHT protocol prefix must start with \"/\"\n" + hint},
		{"listen address without transport", []string{"--rendezvous", "r", "--listen", "/ip4/127.0.0.1"}, 2, "p2pd chat: invalid --listen value \"/ip4/127.0.0.1\": want a TCP (/ip4/ADDR/tcp/PORT) or QUIC (/ip4/ADDR/udp/PORT/quic-v1) address\n" + hint},
		{"bootstrap without peer ID", []string{"--rendezvous", "r", "--bootstrap", "/ip4/127.0.0.1/tcp/1"}, 2, "p2pd chat: invalid --bootstrap value \"/ip4/127.0.0.1/tcp/1\": want a multiaddr ending in /p2p/<peer id> (invalid p2p multiaddr)\n" + hint},
		{"none with a peer", []string{"--rendezvous", "r", "--bootstrap", "none,/ip4/127.0.0.1/tcp/1/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"}, 2, "p2pd chat: invalid --bootstrap value \"none\": \"none\" must be the only bootstrap value\n" + hint},
		{"repo that does not exist", []string{"--rendezvous", "r", "--repo", "/nonexistent/repo"}, 1, "p2pd chat: --repo /nonexistent/repo: /nonexistent/repo: repo not initialized (run `p2pd init --repo /nonexistent/repo`)\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin, append([]string{"chat"}, tc.args...)...)
			cmd.Env = testEnv(t)
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code || stderr.String() != tc.stderr || stdout.String() != "" {
				t.Fatalf("exit %d, stdout %q, stderr:\n%s\nwant exit %d, no stdout, stderr:\n%s", code, stdout.String(), stderr.String(), tc.code, tc.stderr)
			}
		})
	}
}

// TestE2EWaitPeers pipes a line into a chat that waits for two peers: it
// is sent only once both are in the room, so both get it, under the
// sender's --nick beside its short ID; a chat waiting
// for more peers than come gives up with an error. The "listening on"
// lines show only with --verbose.
func TestE2EWaitPeers(t *testing.T) {
	bin := needBinary(t)
	_, boot := startBootstrap(t, bin)
	const room = "waiting room"

	sender := startChat(t, bin, "sender", room, boot, "--wait-peers", "2", "--nick", "the sender")
	sender.write("for both of you\n")
	_ = sender.stdin.Close() // EOF right away: the line waits, then the chat ends
	sender.waitErrLine("* waiting for 2 peer(s) before sending (at most 1m0s)")

	alice := startChat(t, bin, "alice", room, boot, "--verbose")
	bob := startChat(t, bin, "bob", room, boot)
	for _, c := range []*chatProc{alice, bob} {
		c.waitOut("* the sender (" + sender.short + ") joined")
		c.waitOut("the sender (" + sender.short + "): for both of you")
	}
	alice.waitOut("* " + bob.short + " joined") // no --nick: the short ID alone
	sender.waitExit()
	if n := len(regexpLines(alice.errOut, `^\* listening on /ip4/127\.0\.0\.1/tcp/\d+/p2p/`)); n == 0 {
		t.Errorf("--verbose printed no listening line:\n%s", alice.errOut)
	}
	if n := len(regexpLines(bob.errOut, `listening on`)); n != 0 {
		t.Errorf("without --verbose chat printed %d listening lines:\n%s", n, bob.errOut)
	}

	lonely := startChat(t, bin, "lonely", "an empty room", boot, "--wait-peers", "3", "--wait-timeout", "1s")
	lonely.write("anyone?\n")
	select {
	case <-lonely.exited:
	case <-time.After(waitLimit):
		t.Fatal("the waiting chat did not give up")
	}
	if lonely.waitErr == nil || !strings.Contains(lonely.errOut.String(), "timed out waiting for peers: 0 of the 3 peers asked for joined within 1s") {
		t.Fatalf("lonely chat: exit %v, stderr:\n%s", lonely.waitErr, lonely.errOut)
	}
}

// regexpLines returns the lines of l matching re.
func regexpLines(l *lineLog, re string) []string {
	var out []string
	for _, s := range l.snapshotLines() {
		if regexp.MustCompile(re).MatchString(s) {
			out = append(out, s)
		}
	}
	return out
}
