// Package e2e runs the built p2pd binary as separate processes on
// 127.0.0.1 and checks what users see: readiness lines, CLI output and exit
// codes, tunnels carrying real TCP services. Every test cleans up its
// processes; ports are always picked by the kernel.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/p2pd/p2pd/internal/childproc"
)

// bin is the p2pd binary built once for the whole package.
var bin string

func TestMain(m *testing.M) {
	if runHelper() {
		return
	}
	raiseFileLimit()
	dir, err := os.MkdirTemp("", "p2pd-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "p2pd")
	build := exec.Command("go", "build", "-o", bin, "../cmd/p2pd")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building p2pd:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// raiseFileLimit lifts this process's open-file limit as far as it may go
// (as root: 1<<20), so the scale tests' children inherit it.
func raiseFileLimit() {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	want := syscall.Rlimit{Cur: 1 << 20, Max: 1 << 20}
	if lim.Max >= want.Max || syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) != nil {
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
}

// node is one running `p2pd daemon` process.
type node struct {
	t     testing.TB
	repo  string
	args  []string
	cmd   *exec.Cmd
	id    string
	addrs []string // listening on: lines, with /p2p/<id>
	api   string
	gw    string        // the gateway: line, if the daemon runs one
	out   *lockedBuffer // everything after the readiness lines
	errb  *lockedBuffer
	done  chan struct{}
	exit  error
	// readyAt is when the api: line arrived.
	readyAt time.Time
	// netns, if set, is the network namespace the daemon and its CLI run in.
	netns string
}

// lockedBuffer is a bytes.Buffer safe for a writer goroutine and readers.
type lockedBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// baseArgs are the flags every test daemon gets unless the test overrides
// them: loopback only, kernel-picked ports, no LAN or public network.
func baseArgs(repo string) []string {
	return []string{"daemon", "--repo", repo,
		"--listen", "/ip4/127.0.0.1/tcp/0",
		"--api", "/ip4/127.0.0.1/tcp/0",
		"--mdns=false"}
}

// startDaemon starts a daemon with a new repo and extra flags and waits
// until it prints its readiness lines.
func startDaemon(t testing.TB, extra ...string) *node {
	t.Helper()
	n := &node{t: t, repo: t.TempDir()}
	n.args = append(baseArgs(n.repo), extra...)
	n.start()
	return n
}

func (n *node) start() {
	t := n.t
	t.Helper()
	cmd := exec.Command(bin, n.args...)
	if n.netns != "" {
		cmd = exec.Command("ip", append([]string{"netns", "exec", n.netns, bin}, n.args...)...)
	}
	// Own process group (killed as one at cleanup), and killed by the kernel
	// should this test process die without running its cleanups.
	cmd.SysProcAttr = childproc.Attr(true)
	cmd.Env = os.Environ() // production log levels: p2pd warnings, library errors
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	n.errb = &lockedBuffer{}
	n.out = &lockedBuffer{}
	cmd.Stderr = n.errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.cmd = cmd
	n.done = make(chan struct{})
	ready := make(chan error, 1)
	n.addrs = nil
	go func() {
		sc := bufio.NewScanner(stdout)
		gotAPI := false
		for sc.Scan() {
			line := sc.Text()
			if gotAPI {
				n.out.Write([]byte(line + "\n"))
				continue
			}
			switch {
			case strings.HasPrefix(line, "peer id: "):
				n.id = strings.TrimPrefix(line, "peer id: ")
			case strings.HasPrefix(line, "listening on: "):
				n.addrs = append(n.addrs, strings.TrimPrefix(line, "listening on: "))
			case strings.HasPrefix(line, "gateway: "):
				n.gw = strings.TrimPrefix(line, "gateway: ")
			case strings.HasPrefix(line, "api: "):
				n.api = strings.TrimPrefix(line, "api: ")
				n.readyAt = time.Now()
				gotAPI = true
				ready <- nil
			}
		}
		if !gotAPI {
			ready <- fmt.Errorf("daemon exited before it was ready")
		}
		io.Copy(io.Discard, stdout)
	}()
	go func() {
		n.exit = cmd.Wait()
		close(n.done)
	}()
	t.Cleanup(func() {
		n.kill()
		if t.Failed() {
			t.Logf("daemon %s (%v) stderr:\n%s", n.id, n.args, tail(n.errb.String(), 40))
		}
	})
	select {
	case err := <-ready:
		if err != nil {
			<-n.done
			t.Fatalf("%v: %v\nstderr:\n%s", n.args, err, n.errb.String())
		}
	case <-time.After(60 * time.Second):
		n.kill()
		t.Fatalf("daemon not ready after 60s\nstderr:\n%s", n.errb.String())
	}
}

// kill ends the daemon's whole process group at once (SIGKILL).
func (n *node) kill() {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	select {
	case <-n.done:
		return
	default:
	}
	syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
	<-n.done
}

// stop sends SIGTERM and waits for a clean exit.
func (n *node) stop() error {
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
		return n.exit
	case <-time.After(30 * time.Second):
		n.kill()
		return fmt.Errorf("daemon did not stop within 30s after SIGTERM")
	}
}

// restart starts the daemon again on the same repo with the same flags.
func (n *node) restart() {
	n.kill()
	n.start()
}

// restartSamePort restarts the daemon listening on the TCP port it had, so
// peers that stored its address reach it again.
func (n *node) restartSamePort() {
	for i, a := range n.args {
		if a == "/ip4/127.0.0.1/tcp/0" && i > 0 && n.args[i-1] == "--listen" {
			n.args[i] = strings.SplitN(n.addr(), "/p2p/", 2)[0]
		}
	}
	n.restart()
}

// addr is the daemon's first libp2p address, with /p2p/<id>.
func (n *node) addr() string {
	if len(n.addrs) == 0 {
		n.t.Fatalf("daemon has no listen address")
	}
	return n.addrs[0]
}

// result is what a CLI command did.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
}

// p2pd runs the CLI with args and returns what it did.
func p2pd(t testing.TB, args ...string) result {
	t.Helper()
	return run(t, bin, args...)
}

// run runs a command to its end and returns what it did.
func run(t testing.TB, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("running %s %v: %v", name, args, err)
		}
		code = ee.ExitCode()
	}
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

// cli runs a CLI command against this daemon (through its repo).
func (n *node) cli(args ...string) result {
	n.t.Helper()
	args = append(args, "--repo", n.repo)
	if n.netns != "" {
		return run(n.t, "ip", append([]string{"netns", "exec", n.netns, bin}, args...)...)
	}
	return p2pd(n.t, args...)
}

// mustJSON runs a CLI command with --json, requires exit 0 and decodes it.
func (n *node) mustJSON(v any, args ...string) {
	n.t.Helper()
	r := n.cli(append(args, "--json")...)
	if r.code != 0 {
		n.t.Fatalf("p2pd %v: %s", args, r)
	}
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		n.t.Fatalf("p2pd %v: decoding %q: %v", args, r.stdout, err)
	}
}

// eventually polls f until it returns nil or the deadline passes.
func eventually(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("still failing after %s: %v", timeout, err)
}

type execCmd = exec.Cmd

func newExecCmd(name string, args ...string) *exec.Cmd { return exec.Command(name, args...) }

// metrics fetches the daemon's Prometheus metrics through its API.
func (n *node) metrics() string {
	n.t.Helper()
	tok, err := os.ReadFile(filepath.Join(n.repo, "api.token"))
	if err != nil {
		n.t.Fatal(err)
	}
	hp := strings.Replace(strings.TrimPrefix(n.api, "/ip4/"), "/tcp/", ":", 1)
	req, _ := http.NewRequest("GET", "http://"+hp+"/api/v1/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d lines before)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
