package e2e

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/p2pd/p2pd/api"
)

// Cases loopback cannot show run across a real link: a network namespace
// joined to this one by a veth pair. They need root and iproute2, and skip
// with a message otherwise.

// netns is a namespace "far" whose veth end has farIP, joined to this
// namespace's end, which has nearIP.
type netns struct {
	name, nearDev, farDev string
	nearIP, farIP         string
}

func newNetns(t *testing.T) *netns {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network-namespace test: needs root (ip netns, veth)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("network-namespace test: needs the ip command (Debian package iproute2)")
	}
	id := os.Getpid() % 200
	n := &netns{
		name:    fmt.Sprintf("p2pd-e2e-%d", os.Getpid()),
		nearDev: fmt.Sprintf("p2pn%d", os.Getpid()%100000),
		farDev:  fmt.Sprintf("p2pf%d", os.Getpid()%100000),
		nearIP:  fmt.Sprintf("10.231.%d.1", id),
		farIP:   fmt.Sprintf("10.231.%d.2", id),
	}
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", n.nearDev).Run()
		exec.Command("ip", "netns", "del", n.name).Run()
	})
	for _, args := range [][]string{
		{"netns", "add", n.name},
		{"link", "add", n.nearDev, "type", "veth", "peer", "name", n.farDev},
		{"link", "set", n.farDev, "netns", n.name},
		{"addr", "add", n.nearIP + "/24", "dev", n.nearDev},
		{"link", "set", n.nearDev, "up"},
		{"-n", n.name, "addr", "add", n.farIP + "/24", "dev", n.farDev},
		{"-n", n.name, "link", "set", n.farDev, "up"},
		{"-n", n.name, "link", "set", "lo", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Skipf("network-namespace test: ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return n
}

// setLink cuts (up=false) or restores the link.
func (n *netns) setLink(t *testing.T, up bool) {
	t.Helper()
	state := "down"
	if up {
		state = "up"
	}
	if out, err := exec.Command("ip", "link", "set", n.nearDev, state).CombinedOutput(); err != nil {
		t.Fatalf("ip link set %s %s: %v: %s", n.nearDev, state, err, out)
	}
}

// startFarDaemon starts a daemon inside the namespace, listening on its
// veth address.
func (n *netns) startFarDaemon(t *testing.T, extra ...string) *node {
	t.Helper()
	nd := &node{t: t, repo: t.TempDir(), netns: n.name}
	nd.args = append([]string{"daemon", "--repo", nd.repo,
		"--listen", "/ip4/" + n.farIP + "/tcp/0",
		"--api", "/ip4/127.0.0.1/tcp/0", "--mdns=false", "--bootstrap", "none", "--dht", "off"}, extra...)
	nd.start()
	return nd
}

// echoProcessIn runs the echo helper inside the namespace.
func (n *netns) echoProcessIn(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", n.name, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=echo")
	out, _ := cmd.StdoutPipe()
	stdin, _ := cmd.StdinPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("echo helper in %s: %v", n.name, err)
	}
	port, _ := strconv.Atoi(strings.TrimSpace(line))
	return fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port)
}

// echoTunnel starts a daemon in the namespace serving /x/echo from an echo
// service there, and a daemon here forwarding a local port to it across the
// link; it returns both daemons and the forward's local address.
func (n *netns) echoTunnel(t *testing.T) (far, near *node, addr string) {
	t.Helper()
	far = n.startFarDaemon(t)
	near = startDaemon(t, "--listen", "/ip4/"+n.nearIP+"/tcp/0", "--bootstrap", "none", "--dht", "off")
	var l api.Listener
	far.mustJSON(&l, "listen", "/x/echo", n.echoProcessIn(t))
	var f api.Listener
	near.mustJSON(&f, "forward", "/x/echo", "/ip4/127.0.0.1/tcp/0", far.addr())
	return far, near, hostPort(t, f.ListenAddress)
}

func TestNetnsForwardAcrossLink(t *testing.T) {
	ns := newNetns(t)
	far, _, addr := ns.echoTunnel(t)
	c := dial(t, addr)
	const size = 16 << 20
	want, _, _ := sha(randomStream(5, size))
	go func() {
		io.Copy(c, randomStream(5, size))
		c.CloseWrite()
	}()
	got, n, err := sha(c)
	if err != nil || n != size || got != want {
		t.Fatalf("echo across the link: %d bytes sha %s err %v; want %d bytes sha %s", n, got, err, size, want)
	}

	t.Run("deny the far network", func(t *testing.T) {
		denied := startDaemon(t, "--listen", "/ip4/"+ns.nearIP+"/tcp/0", "--bootstrap", "none", "--dht", "off",
			"--deny", ns.farIP+"/32")
		if r := denied.cli("connect", far.addr()); r.code != 1 {
			t.Fatalf("a daemon denying %s dialled it: %s", ns.farIP, r)
		}
		if r := far.cli("connect", denied.addr()); r.code != 1 {
			t.Fatalf("a daemon denying %s accepted it: %s", ns.farIP, r)
		}
	})
}

// TestNetnsCutLink cuts the link under an open tunnel: the local client must
// see its connection fail (not hang forever), the survivor's stream list must
// empty, and once the link is back a new connection through the same
// forward works.
func TestNetnsCutLink(t *testing.T) {
	if testing.Short() {
		t.Skip("cut-link test waits for the libp2p keepalive: skipped with -short")
	}
	ns := newNetns(t)
	_, near, addr := ns.echoTunnel(t)
	c := dial(t, addr)
	if err := echoCheck(c, 1, 1000); err != nil {
		t.Fatal(err)
	}
	ns.setLink(t, false)
	start := time.Now()
	// Keep writing so the dead link is noticed by TCP as well as by yamux.
	go func() {
		for {
			if _, err := c.Write([]byte("x")); err != nil {
				return
			}
			time.Sleep(500 * time.Millisecond)
		}
	}()
	c.SetReadDeadline(time.Now().Add(3 * time.Minute))
	_, err := io.Copy(io.Discard, c)
	if !isReset(err) {
		t.Fatalf("after the link was cut the client saw %v, want a reset", err)
	}
	t.Logf("the client's connection failed %s after the cut", time.Since(start).Round(time.Second))
	eventually(t, 30*time.Second, func() error {
		var ss []api.Stream
		near.mustJSON(&ss, "streams")
		if len(ss) != 0 {
			return fmt.Errorf("%d streams open", len(ss))
		}
		return nil
	})
	ns.setLink(t, true)
	eventually(t, 60*time.Second, func() error {
		c2, err := dialOnce(addr)
		if err != nil {
			return err
		}
		defer c2.Close()
		c2.SetDeadline(time.Now().Add(10 * time.Second))
		return echoCheck(c2, 2, 1000)
	})
}
