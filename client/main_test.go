package client_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/p2pd/p2pd/client"
	"github.com/p2pd/p2pd/internal/childproc"
)

// p2pdBin is the p2pd binary built for this test run.
var p2pdBin string

// runner builds the binary and starts the daemon the examples use around
// the tests; goleak checks for leaks once it has cleaned up.
type runner struct{ m *testing.M }

func (r runner) Run() int {
	dir, err := os.MkdirTemp("", "p2pd-client-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	p2pdBin = filepath.Join(dir, "p2pd")
	build := exec.Command("go", "build", "-o", p2pdBin, "github.com/p2pd/p2pd/cmd/p2pd")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building p2pd: %v\n%s", err, out)
		return 1
	}
	// The examples use the zero Config: the repo named by $P2PD_REPO.
	example, err := launch(filepath.Join(dir, "example-repo"), "/ip4/127.0.0.1/tcp/0")
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting the examples' daemon: %v\n", err)
		return 1
	}
	os.Setenv(client.EnvRepo, example.repo)
	code := r.m.Run()
	if err := example.stop(syscall.SIGTERM); err != nil {
		fmt.Fprintf(os.Stderr, "stopping the examples' daemon: %v\n", err)
		code = 1
	}
	return code
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(runner{m})
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// node is a `p2pd daemon` process.
type node struct {
	repo   string
	api    string // from the "api:" line
	id     string // from the "peer id:" line
	cmd    *exec.Cmd
	stderr syncBuffer
	exited chan struct{} // closed once the process has been waited for
}

// launch runs `p2pd daemon` on repo and waits for its readiness lines.
// extra flags are added to the test defaults; a --bootstrap among them
// replaces the default "--bootstrap none".
func launch(repo, apiAddr string, extra ...string) (*node, error) {
	n := &node{repo: repo, exited: make(chan struct{})}
	args := []string{"daemon", "--repo", repo, "--listen", "/ip4/127.0.0.1/tcp/0", "--api", apiAddr,
		"--dht", "server", "--dht-prefix", "/clienttest", "--mdns=false"}
	if !slices.Contains(extra, "--bootstrap") {
		args = append(args, "--bootstrap", "none")
	}
	args = append(args, extra...)
	n.cmd = exec.Command(p2pdBin, args...)
	// Killed by the kernel should this test process die without cleanups.
	n.cmd.SysProcAttr = childproc.Attr(false)
	n.cmd.Stderr = &n.stderr
	stdout, err := n.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := n.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting p2pd: %w", err)
	}
	ready := make(chan struct{})
	var id, api string
	go func() {
		defer close(n.exited)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "peer id: "); ok && id == "" {
				id = v
			}
			if v, ok := strings.CutPrefix(line, "api: "); ok && api == "" {
				api = v
				close(ready) // "api:" is the last readiness line
			}
		}
		_ = n.cmd.Wait() // after the last read of stdout, as exec asks
	}()
	select {
	case <-ready:
		n.id, n.api = id, api
		return n, nil
	case <-n.exited:
		return nil, fmt.Errorf("p2pd daemon exited before it was ready: %s", n.stderr.String())
	case <-time.After(60 * time.Second):
		n.cmd.Process.Kill()
		<-n.exited
		return nil, fmt.Errorf("p2pd daemon not ready after 60s: %s", n.stderr.String())
	}
}

// stop signals the daemon and waits for it to exit (killing it if a
// SIGTERM is not enough within 20 s). Stopping a stopped daemon does nothing.
func (n *node) stop(sig os.Signal) error {
	select {
	case <-n.exited:
		return nil
	default:
	}
	if err := n.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-n.exited:
		return nil
	case <-time.After(20 * time.Second):
		n.cmd.Process.Kill()
		<-n.exited
		return fmt.Errorf("daemon on %s ignored %v for 20s", n.repo, sig)
	}
}

// startNode launches a daemon with a fresh repo; the test's cleanup kills it.
func startNode(t *testing.T, apiAddr string, extra ...string) *node {
	t.Helper()
	n, err := launch(filepath.Join(t.TempDir(), "repo"), apiAddr, extra...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.stop(syscall.SIGKILL) })
	return n
}

// restart launches a daemon again on n's repo.
func restart(t *testing.T, n *node) *node {
	t.Helper()
	m, err := launch(n.repo, "/ip4/127.0.0.1/tcp/0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.stop(syscall.SIGKILL) })
	return m
}

// newClient returns a client for cfg whose idle connections are closed at
// the end of the test.
func newClient(t *testing.T, cfg *client.Config) client.Client {
	t.Helper()
	c, err := client.NewDefaultClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// testContext is a context that ends with the test, or after a minute.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}
