package chat

import (
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/p2pd/p2pd/internal/childproc"
)

// lineLog collects the lines a process writes and lets a test wait for one.
type lineLog struct {
	mu      sync.Mutex // guards lines, partial and changed
	lines   []string
	partial string
	changed chan struct{} // closed and replaced on every write
}

func newLineLog() *lineLog { return &lineLog{changed: make(chan struct{})} }

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	parts := strings.Split(l.partial+string(p), "\n")
	l.lines = append(l.lines, parts[:len(parts)-1]...)
	l.partial = parts[len(parts)-1]
	close(l.changed)
	l.changed = make(chan struct{})
	return len(p), nil
}

func (l *lineLog) snapshot() ([]string, chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...), l.changed
}

func (l *lineLog) String() string {
	lines, _ := l.snapshot()
	return strings.Join(lines, "\n")
}

// count returns how many complete lines equal line.
func (l *lineLog) count(line string) int {
	lines, _ := l.snapshot()
	n := 0
	for _, s := range lines {
		if s == line {
			n++
		}
	}
	return n
}

// proc is a p2pd process run by a test, killed (with its process group) at
// the end of the test if it is still running.
type proc struct {
	t           *testing.T
	name        string
	cmd         *exec.Cmd
	stdin       io.WriteCloser
	out, errOut *lineLog
	exited      chan struct{}
	waitErr     error // set before exited is closed
}

func startProc(t *testing.T, name, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, out: newLineLog(), errOut: newLineLog(), exited: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = testEnv(t)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.errOut
	p.cmd.SysProcAttr = childproc.Attr(true)
	stdin, err := p.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.stdin = stdin
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.exited
		}
		if t.Failed() {
			t.Logf("%s stdout:\n%s\n%s stderr:\n%s", name, p.out, name, p.errOut)
		}
	})
	return p
}

// testEnv is the environment of the processes: the test's, with a HOME of
// its own and no settings that change p2pd's output.
func testEnv(t *testing.T) []string {
	var env []string
	for _, kv := range os.Environ() {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "HOME", "P2PD_REPO", "GOLOG_LOG_LEVEL", "NO_COLOR":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+t.TempDir())
}

// waitLine waits for a line of log matching re and returns its submatches.
func (p *proc) waitLine(log *lineLog, re *regexp.Regexp, what string) []string {
	p.t.Helper()
	deadline := time.After(waitLimit)
	for {
		lines, changed := log.snapshot()
		for _, l := range lines {
			if m := re.FindStringSubmatch(l); m != nil {
				return m
			}
		}
		select {
		case <-changed:
		case <-p.exited:
			lines, _ := log.snapshot()
			for _, l := range lines {
				if m := re.FindStringSubmatch(l); m != nil {
					return m
				}
			}
			p.t.Fatalf("%s exited (%v) before %s", p.name, p.waitErr, what)
		case <-deadline:
			p.t.Fatalf("%s: no %s within %v", p.name, what, waitLimit)
		}
	}
}

// waitOut waits for the exact line on stdout.
func (p *proc) waitOut(line string) {
	p.t.Helper()
	p.waitLine(p.out, regexp.MustCompile("^"+regexp.QuoteMeta(line)+"$"), "line "+strconvQuote(line))
}

// waitErrLine waits for the exact line on stderr.
func (p *proc) waitErrLine(line string) {
	p.t.Helper()
	p.waitLine(p.errOut, regexp.MustCompile("^"+regexp.QuoteMeta(line)+"$"), "stderr line "+strconvQuote(line))
}

func strconvQuote(s string) string {
	if len(s) > 60 {
		s = s[:60] + "..."
	}
	return `"` + s + `"`
}

func (p *proc) write(s string) {
	p.t.Helper()
	if _, err := io.WriteString(p.stdin, s); err != nil {
		p.t.Fatalf("writing to %s: %v", p.name, err)
	}
}

// waitExit waits for the process to end and checks its exit code is 0.
func (p *proc) waitExit() {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(waitLimit):
		p.t.Fatalf("%s did not exit", p.name)
	}
	if p.waitErr != nil {
		p.t.Fatalf("%s exited with %v, want exit code 0", p.name, p.waitErr)
	}
}

var listenLine = regexp.MustCompile(`^listening on: (/ip4/127\.0\.0\.1/tcp/\d+/p2p/\w+)$`)

// startBootstrap runs the bootstrap daemon of the end-to-end tests and
// returns its TCP address.
func startBootstrap(t *testing.T, bin string) (*proc, string) {
	t.Helper()
	d := startProc(t, "daemon", bin, "daemon", "--repo", t.TempDir()+"/repo",
		"--listen", "/ip4/127.0.0.1/tcp/0", "--api", "/ip4/127.0.0.1/tcp/0",
		"--bootstrap", "none", "--dht", "server", "--dht-prefix", "/chattest", "--mdns=false")
	m := d.waitLine(d.out, listenLine, "listen address")
	return d, m[1]
}

var youAre = regexp.MustCompile(`^\* you are (\w+) \((\w+)\) in room "(.*)"$`)

// chatProc is a `p2pd chat` process and the short ID it announced.
type chatProc struct {
	*proc
	short, id string
}

// startChat runs `p2pd chat` on pipes in room, bootstrapped through boot,
// with extra flags.
func startChat(t *testing.T, bin, name, room, boot string, extra ...string) *chatProc {
	t.Helper()
	p := startProc(t, name, bin, append(chatArgs(room, boot), extra...)...)
	m := p.waitLine(p.errOut, youAre, "banner")
	if m[3] != room {
		t.Fatalf("%s announced room %q, want %q", name, m[3], room)
	}
	return &chatProc{proc: p, short: m[1], id: m[2]}
}

func chatArgs(room, boot string) []string {
	return []string{"chat", "--rendezvous", room, "--bootstrap", boot, "--dht-prefix", "/chattest",
		"--mdns=false", "--listen", "/ip4/127.0.0.1/tcp/0"}
}
