package e2e

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/p2pd/p2pd/api"
)

// pair starts two daemons (client side a, server side b) that know nothing
// of each other: tunnels reach b through the address in the forward target.
func pair(t *testing.T) (a, b *node) {
	t.Helper()
	a = startDaemon(t, "--bootstrap", "none", "--dht", "off")
	b = startDaemon(t, "--bootstrap", "none", "--dht", "off")
	return a, b
}

// tunnel makes b serve proto by dialling target, and a forward a local port
// to it; it returns the forward's local TCP address (host:port).
func tunnel(t *testing.T, a, b *node, proto, target string) string {
	t.Helper()
	var l api.Listener
	b.mustJSON(&l, "listen", proto, target)
	var f api.Listener
	a.mustJSON(&f, "forward", proto, "/ip4/127.0.0.1/tcp/0", b.addr())
	return hostPort(t, f.ListenAddress)
}

// hostPort turns /ip4/A/tcp/P into A:P.
func hostPort(t testing.TB, maddr string) string {
	t.Helper()
	parts := strings.Split(maddr, "/")
	if len(parts) != 5 || parts[1] != "ip4" || parts[3] != "tcp" || parts[4] == "0" {
		t.Fatalf("unexpected listen address %q", maddr)
	}
	return net.JoinHostPort(parts[2], parts[4])
}

// dialOnce dials addr without failing the test.
func dialOnce(addr string) (net.Conn, error) {
	return net.DialTimeout("tcp", addr, 10*time.Second)
}

func dial(t testing.TB, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

const big = 64 << 20

func TestTransfer64MiB(t *testing.T) {
	a, b := pair(t)
	t.Run("server to client", func(t *testing.T) {
		svc := startService(t, sourceHandler(7, big))
		addr := tunnel(t, a, b, "/x/source", svc.maddr())
		want, _, _ := sha(randomStream(7, big))
		c := dial(t, addr)
		c.CloseWrite() // we send nothing
		got, n, err := sha(c)
		if err != nil || n != big || got != want {
			t.Fatalf("received %d bytes, sha %s (err %v); want %d bytes, sha %s", n, got, err, big, want)
		}
	})
	t.Run("client to server", func(t *testing.T) {
		svc := startService(t, sinkHandler)
		addr := tunnel(t, a, b, "/x/sink", svc.maddr())
		want, _, _ := sha(randomStream(8, big))
		c := dial(t, addr)
		if _, err := io.Copy(c, randomStream(8, big)); err != nil {
			t.Fatal(err)
		}
		c.CloseWrite()
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line != fmt.Sprintf("%s %d\n", want, big) {
			t.Fatalf("service got %q, want %s %d", line, want, big)
		}
	})
}

// TestHalfClose: the client sends 1 MiB and shuts its write side; the
// service answers only after EOF, with 1 MiB derived from what it got; the
// client receives all of it.
func TestHalfClose(t *testing.T) {
	a, b := pair(t)
	const size = 1 << 20
	svc := startService(t, func(c net.Conn) {
		h := sha256.New()
		if _, err := io.Copy(h, c); err != nil { // until the client's EOF
			return
		}
		seed := h.Sum(nil)
		io.Copy(c, randomStream(uint64(seed[0])<<8|uint64(seed[1]), size))
		c.(*net.TCPConn).CloseWrite()
	})
	addr := tunnel(t, a, b, "/x/halfclose", svc.maddr())
	c := dial(t, addr)
	payload, _ := io.ReadAll(randomStream(99, size))
	if _, err := c.Write(payload); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(payload)
	want, _, _ := sha(randomStream(uint64(sum[0])<<8|uint64(sum[1]), size))
	got, n, err := sha(c)
	if err != nil || n != size || got != want {
		t.Fatalf("reply: %d bytes sha %s err %v; want %d bytes sha %s", n, got, err, size, want)
	}
}

// echoCheck writes a unique message on c and checks the echo.
func echoCheck(c net.Conn, i int, size int) error {
	msg, _ := io.ReadAll(randomStream(uint64(i), int64(size)))
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(msg)
		errc <- err
	}()
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("conn %d: %w", i, err)
	}
	if err := <-errc; err != nil {
		return fmt.Errorf("conn %d: %w", i, err)
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("conn %d: echo differs", i)
	}
	return nil
}

func TestConcurrentConnections(t *testing.T) {
	a, b := pair(t)
	svc := startService(t, echoHandler)
	addr := tunnel(t, a, b, "/x/echo", svc.maddr())
	var g errgroup.Group
	for i := 0; i < 200; i++ {
		g.Go(func() error {
			c, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			return echoCheck(c, i, 64<<10)
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if n := svc.acceptCount(); n != 200 {
		t.Fatalf("service accepted %d connections, want 200", n)
	}
}

// TestTenThousandIdleConnections holds 10,000 connections open through one
// forward at once, then sends a byte on every one and checks the echo.
func TestTenThousandIdleConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("scale test: skipped with -short")
	}
	var lim syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	if lim.Cur < 12000 {
		t.Skipf("open-file limit %d is too low for 10,000 connections (need 12,000)", lim.Cur)
	}
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("P2PD_E2E_IDLE_CONNS")); err == nil {
		n = v
	}
	a, b := pair(t)
	echo, echoPID := echoProcess(t)
	var l api.Listener
	b.mustJSON(&l, "listen", "/x/idle", echo)
	var f api.Listener
	a.mustJSON(&f, "forward", "/x/idle", "/ip4/127.0.0.1/tcp/0", b.addr())
	addr := hostPort(t, f.ListenAddress)

	conns := make([]net.Conn, n)
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	var g errgroup.Group
	g.SetLimit(128) // stay within the listen backlog
	for i := range conns {
		g.Go(func() error {
			c, err := net.DialTimeout("tcp", addr, 30*time.Second)
			if err != nil {
				return fmt.Errorf("connection %d: %w", i, err)
			}
			conns[i] = c
			// A first byte proves the stream and the far connection exist.
			return echoCheck(c, i, 1)
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	var streams []api.Stream
	a.mustJSON(&streams, "streams")
	t.Logf("echo service holds %d files, daemons a %d and b %d", openFiles(echoPID), openFiles(a.cmd.Process.Pid), openFiles(b.cmd.Process.Pid))
	if len(streams) != n {
		t.Fatalf("a has %d open streams, want %d", len(streams), n)
	}
	// All still carry data after being held open together.
	g = errgroup.Group{}
	g.SetLimit(256)
	for i, c := range conns {
		g.Go(func() error {
			c.SetDeadline(time.Now().Add(2 * time.Minute))
			return echoCheck(c, n+i, 1)
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}

// dialNoData dials addr and reads: the connection must end without
// carrying a byte. A forward that refuses may reset the connection before
// the dial has seen it established, which counts as ending too.
func dialNoData(addr string) error {
	c, err := dialOnce(addr)
	if err != nil {
		if isReset(err) {
			return nil
		}
		return err
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err == nil {
		return fmt.Errorf("it carried data (%d byte)", n)
	}
	return nil
}

// isReset reports whether err is what a TCP client sees when its peer
// aborts the connection (RST).
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func TestFarDaemonKilledMidTransfer(t *testing.T) {
	a, b := pair(t)
	baseline := goroutines(t, a)
	svc := startService(t, sourceHandler(3, 1<<40)) // endless
	addr := tunnel(t, a, b, "/x/endless", svc.maddr())
	c := dial(t, addr)
	if _, err := io.CopyN(io.Discard, c, 8<<20); err != nil {
		t.Fatal(err)
	}
	b.kill()
	c.SetReadDeadline(time.Now().Add(time.Minute))
	_, err := io.Copy(io.Discard, c)
	if !isReset(err) {
		t.Fatalf("after the far daemon died the client saw %v, want a connection reset", err)
	}
	eventually(t, 30*time.Second, func() error {
		var ss []api.Stream
		a.mustJSON(&ss, "streams")
		if len(ss) != 0 {
			return fmt.Errorf("%d streams still open on the survivor", len(ss))
		}
		return nil
	})
	// The survivor's goroutines come back to where they were.
	eventually(t, 30*time.Second, func() error {
		if g := goroutines(t, a); g > baseline+5 {
			return fmt.Errorf("%d goroutines, %d before the transfer", g, baseline)
		}
		return nil
	})
}

// goroutines reads go_goroutines from the daemon's metrics.
func goroutines(t testing.TB, n *node) int {
	t.Helper()
	return int(gauge(t, n, "go_goroutines"))
}

// gauge reads an unlabelled gauge from the daemon's metrics.
func gauge(t testing.TB, n *node, name string) float64 {
	t.Helper()
	body := n.metrics()
	for _, line := range strings.Split(body, "\n") {
		var v float64
		if _, err := fmt.Sscanf(line, name+" %g", &v); err == nil {
			return v
		}
	}
	t.Fatalf("no %s in metrics", name)
	return 0
}

func TestStreamsCloseAndListenerClose(t *testing.T) {
	a, b := pair(t)
	svc := startService(t, echoHandler)
	addr := tunnel(t, a, b, "/x/echo", svc.maddr())

	// Open c1 and carry data before opening c2, so c1's stream is 0.
	c1 := dial(t, addr)
	if err := echoCheck(c1, 0, 100); err != nil {
		t.Fatal(err)
	}
	c2 := dial(t, addr)
	if err := echoCheck(c2, 1, 100); err != nil {
		t.Fatal(err)
	}
	var ss []api.Stream
	a.mustJSON(&ss, "streams")
	if len(ss) != 2 || ss[0].ID != 0 || ss[1].ID != 1 {
		t.Fatalf("streams: %+v", ss)
	}
	c1Origin := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", c1.LocalAddr().(*net.TCPAddr).Port)
	if ss[0].OriginAddress != c1Origin || ss[0].Protocol != "/x/echo" || ss[0].Peer != b.id ||
		ss[0].BytesOut != 100 || ss[0].BytesIn != 100 || ss[0].TargetAddress != "/p2p/"+b.id {
		t.Fatalf("stream 0: %+v, want origin %s", ss[0], c1Origin)
	}
	// Text output: ID PROTOCOL ORIGIN TARGET.
	r := a.cli("streams")
	if first := strings.Split(r.stdout, "\n")[0]; first != "0 /x/echo "+c1Origin+" /p2p/"+b.id {
		t.Fatalf("streams text: %q", r.stdout)
	}

	// Closing every listener leaves open streams alone.
	var closed api.CloseResponse
	a.mustJSON(&closed, "close", "-a")
	b.mustJSON(&closed, "close", "-a")
	if closed.Closed != 1 {
		t.Fatalf("closed %d on b", closed.Closed)
	}
	for i, c := range []net.Conn{c1, c2} {
		if err := echoCheck(c, 10+i, 100); err != nil {
			t.Fatalf("after closing listeners: %v", err)
		}
	}

	// streams close 0 resets both TCP ends of stream 0 only.
	a.mustJSON(&closed, "streams", "close", "0")
	if closed.Closed != 1 {
		t.Fatalf("streams close 0 closed %d", closed.Closed)
	}
	c1.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := c1.Read(make([]byte, 1)); !isReset(err) {
		t.Fatalf("client of stream 0 saw %v, want a reset", err)
	}
	eventually(t, 30*time.Second, func() error {
		var bs []api.Stream
		b.mustJSON(&bs, "streams")
		if len(bs) != 1 {
			return fmt.Errorf("b has %d streams, want 1", len(bs))
		}
		return nil
	})
	if err := echoCheck(c2, 20, 100); err != nil {
		t.Fatalf("stream 1 after closing stream 0: %v", err)
	}
	// An unknown or already closed ID is an error; IDs are not reused.
	r = a.cli("streams", "close", "0")
	if r.code != 1 || !strings.Contains(r.stderr, "no stream with id 0") {
		t.Fatalf("closing a closed stream: %s", r)
	}
	a.mustJSON(&closed, "streams", "close", "-a")
	if closed.Closed != 1 {
		t.Fatalf("streams close -a closed %d, want 1", closed.Closed)
	}
}

func TestTunnelRuleErrors(t *testing.T) {
	a, b := pair(t)
	svc := startService(t, echoHandler)
	if r := b.cli("listen", "/x/dup", svc.maddr()); r.code != 0 {
		t.Fatal(r)
	}
	tests := []struct {
		name string
		n    *node
		args []string
		code int
		want string
	}{
		{"duplicate listen", b, []string{"listen", "/x/dup", svc.maddr()}, 1, "listener already registered"},
		{"port 0 target", b, []string{"listen", "/x/zero", "/ip4/127.0.0.1/tcp/0"}, 1, "port can not be 0"},
		{"listen outside /x/", b, []string{"listen", "/foo", svc.maddr()}, 1, "protocol name must be within '/x/' namespace"},
		{"forward outside /x/", a, []string{"forward", "/foo", "/ip4/127.0.0.1/tcp/0", b.addr()}, 1, "protocol name must be within '/x/' namespace"},
		{"served protocol", b, []string{"listen", "/ipfs/ping/1.0.0", svc.maddr(), "--allow-custom-protocol"}, 1, "protocol is already served by this node"},
		{"close without filter", a, []string{"close"}, 2, "no matching options given"},
		{"close all with filter", a, []string{"close", "-a", "-p", "/x/dup"}, 2, "can't combine --all with other matching options"},
		{"streams close without id", a, []string{"streams", "close"}, 2, "no id specified"},
		{"streams close bad id", a, []string{"streams", "close", "abc"}, 2, `invalid stream ID "abc"`},
		{"forward target without peer", a, []string{"forward", "/x/a", "/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/tcp/1"}, 2, `invalid TARGET value "/ip4/127.0.0.1/tcp/1"`},
		{"listen bad target", b, []string{"listen", "/x/a", "nonsense"}, 2, `invalid TARGET value "nonsense"`},
		{"listen missing target", b, []string{"listen", "/x/a"}, 2, "missing TARGET"},
		{"bad allow-peer", b, []string{"listen", "/x/a", svc.maddr(), "--allow-peer", "bob"}, 2, `invalid --allow-peer: not a peer ID: "bob"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.n.cli(tt.args...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("want exit %d and %q; got %s", tt.code, tt.want, r)
			}
		})
	}
	// Allowed combinations: a custom protocol with the flag, listen and
	// forward of one protocol on one node, many forwards of one protocol.
	for _, args := range [][]string{
		{"listen", "/custom/1", svc.maddr(), "--allow-custom-protocol"},
		{"forward", "/x/dup", "/ip4/127.0.0.1/tcp/0", a.addr()},
		{"forward", "/x/dup", "/ip4/127.0.0.1/tcp/0", a.addr()},
	} {
		if r := b.cli(args...); r.code != 0 {
			t.Fatalf("%v: %s", args, r)
		}
	}
	var ls []api.Listener
	b.mustJSON(&ls, "ls")
	if len(ls) != 4 || ls[0].Kind != "forward" || ls[1].Kind != "forward" || ls[2].Kind != "listen" {
		t.Fatalf("ls: %+v", ls)
	}
	// Text: PROTOCOL LISTEN TARGET, a listen's LISTEN is /p2p/<own id>.
	r := b.cli("ls")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 4 || lines[2] != "/x/dup /p2p/"+b.id+" "+svc.maddr() {
		t.Fatalf("ls text:\n%s", r.stdout)
	}
	var closed api.CloseResponse
	b.mustJSON(&closed, "close", "-p", "/x/dup", "-t", a.addr())
	if closed.Closed != 2 {
		t.Fatalf("close -p -t closed %d, want the 2 forwards", closed.Closed)
	}
}

func TestAllowPeerAndReportPeerID(t *testing.T) {
	a, b := pair(t)
	c := startDaemon(t, "--bootstrap", "none", "--dht", "off")
	var lines sync.Map
	svc := startService(t, func(conn net.Conn) {
		line, _ := bufio.NewReader(conn).ReadString('\n')
		lines.Store(line, true)
	})
	if r := b.cli("listen", "/x/private", svc.maddr(), "--allow-peer", a.id, "--report-peer-id"); r.code != 0 {
		t.Fatal(r)
	}
	// c is not on the list: refused before the service is dialled.
	var f api.Listener
	c.mustJSON(&f, "forward", "/x/private", "/ip4/127.0.0.1/tcp/0", b.addr())
	if err := dialNoData(hostPort(t, f.ListenAddress)); err != nil {
		t.Fatalf("a refused peer's connection: %v", err)
	}
	if n := svc.acceptCount(); n != 0 {
		t.Fatalf("the service was dialled %d times for a refused peer", n)
	}
	// a is on the list, and the service learns its peer ID first.
	a.mustJSON(&f, "forward", "/x/private", "/ip4/127.0.0.1/tcp/0", b.addr())
	conn := dial(t, hostPort(t, f.ListenAddress))
	conn.Write([]byte("hello\n"))
	conn.CloseWrite()
	io.Copy(io.Discard, conn)
	eventually(t, 10*time.Second, func() error {
		if _, ok := lines.Load(a.id + "\n"); !ok {
			return errors.New("the service did not receive the peer id line")
		}
		return nil
	})
	if n := svc.acceptCount(); n != 1 {
		t.Fatalf("service accepted %d connections, want 1", n)
	}
	if !strings.Contains(b.errb.String(), c.id) {
		t.Fatalf("the refusal was not logged with the peer id; b's log:\n%s", b.errb.String())
	}
}

func TestForwardDialFailureIsShown(t *testing.T) {
	a, b := pair(t)
	// b serves nothing under /x/nobody.
	var f api.Listener
	a.mustJSON(&f, "forward", "/x/nobody", "/ip4/127.0.0.1/tcp/0", b.addr())
	if err := dialNoData(hostPort(t, f.ListenAddress)); err != nil {
		t.Fatalf("a failed forward's connection: %v", err)
	}
	eventually(t, 10*time.Second, func() error {
		var ls []api.Listener
		a.mustJSON(&ls, "ls")
		if len(ls) != 1 || ls[0].LastError == "" {
			return fmt.Errorf("no last_error: %+v", ls)
		}
		return nil
	})
	r := a.cli("ls")
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) != 1 || !strings.Contains(r.stderr, "/x/nobody "+f.ListenAddress+": last error: ") {
		t.Fatalf("ls text: one line on stdout and the error on stderr expected; got %s", r)
	}
}

func TestTunnelsSurviveRestart(t *testing.T) {
	a, b := pair(t)
	svc := startService(t, echoHandler)
	addr := tunnel(t, a, b, "/x/persist", svc.maddr())
	var lsA, lsB []api.Listener
	a.mustJSON(&lsA, "ls")
	b.mustJSON(&lsB, "ls")

	a.restart()
	b.restartSamePort() // the forward's target names b's address

	var lsA2, lsB2 []api.Listener
	a.mustJSON(&lsA2, "ls")
	b.mustJSON(&lsB2, "ls")
	if fmt.Sprint(lsA) != fmt.Sprint(lsA2) || fmt.Sprint(lsB) != fmt.Sprint(lsB2) {
		t.Fatalf("tunnels changed across restart:\na %+v\n  %+v\nb %+v\n  %+v", lsA, lsA2, lsB, lsB2)
	}
	c := dial(t, addr)
	if err := echoCheck(c, 1, 4096); err != nil {
		t.Fatalf("after restart: %v", err)
	}
	b2, err := os.ReadFile(filepath.Join(a.repo, "tunnels.json"))
	if err != nil || !strings.Contains(string(b2), "/x/persist") {
		t.Fatalf("tunnels.json: %s %v", b2, err)
	}
}

func TestForegroundTunnels(t *testing.T) {
	a, b := pair(t)
	svc := startService(t, echoHandler)
	// A foreground listen lives while its command runs.
	cmd := helperlessCommand(b, "listen", "/x/fg", svc.maddr(), "--foreground")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() error {
		var ls []api.Listener
		b.mustJSON(&ls, "ls")
		if len(ls) != 1 || !ls[0].Foreground {
			return fmt.Errorf("ls: %+v", ls)
		}
		return nil
	})
	if data, _ := os.ReadFile(filepath.Join(b.repo, "tunnels.json")); strings.Contains(string(data), "/x/fg") {
		t.Fatalf("a foreground listener was persisted: %s", data)
	}
	cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("foreground listen after SIGINT: %v", err)
	}
	eventually(t, 10*time.Second, func() error {
		var ls []api.Listener
		b.mustJSON(&ls, "ls")
		if len(ls) != 0 {
			return fmt.Errorf("still listed after the command ended: %+v", ls)
		}
		return nil
	})
	// A foreground forward's command ends when the daemon stops.
	cmd = helperlessCommand(a, "forward", "/x/fg", "/ip4/127.0.0.1/tcp/0", b.addr(), "--foreground")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() error {
		var ls []api.Listener
		a.mustJSON(&ls, "ls")
		if len(ls) != 1 {
			return fmt.Errorf("ls: %+v", ls)
		}
		return nil
	})
	if err := a.stop(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(stderr.String(), "ended") {
			t.Fatalf("forward --foreground after the daemon stopped: %v, stderr %q", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("forward --foreground still running after the daemon stopped")
	}
	a.start()
	var ls []api.Listener
	a.mustJSON(&ls, "ls")
	if len(ls) != 0 {
		t.Fatalf("a foreground forward came back after restart: %+v", ls)
	}
}

// helperlessCommand is the CLI as a child process against n, not waited for.
func helperlessCommand(n *node, args ...string) *execCmd {
	cmd := newExecCmd(bin, append(args, "--repo", n.repo)...)
	n.t.Cleanup(func() {
		if cmd.ProcessState == nil && cmd.Process != nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd
}
