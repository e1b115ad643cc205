//go:build linux

// The NAT lab needs Linux network namespaces (setns).

package e2e

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/p2pd/p2pd/api"
)

// The NAT lab: a relay R on a "public" segment, peer A behind NAT1 and
// peer B behind NAT2, each NAT a Linux router that masquerades its LAN and
// drops unsolicited inbound packets, as a home router does:
//
//	"internet" 11.0.0.0/24, a bridge in namespace inet
//	  R     11.0.0.10   (ns r)
//	  NAT1  11.0.0.1 (wan0)  192.168.1.1 (lan0)   A 192.168.1.2 (ns a)
//	  NAT2  11.0.0.2 (wan0)  192.168.2.1 (lan0)   B 192.168.2.2 (ns b)
//
// 11.0.0.0/24 because go-libp2p builds circuit addresses from, and hole
// punches with, public addresses only (manet.IsPublicAddr): TEST-NET ranges
// do not count. Every link is a veth pair created inside the namespaces;
// none reaches this namespace or a real interface, so no packet leaves the
// lab. The DROP rules matter: a router that answers unsolicited packets
// (RST, ICMP) makes conntrack re-map ports, and punching fails.

const (
	natPublicNet = "11.0.0"
	natRelayIP   = natPublicNet + ".10"
)

// natLab is one lab; its namespaces are removed at the end of the test.
type natLab struct {
	t      *testing.T
	prefix string
}

// ns names one of the lab's namespaces.
func (l *natLab) ns(name string) string { return l.prefix + "-" + name }

// newNATLab builds the lab with NATs of the given mode: "" (port-preserving
// MASQUERADE) or "--random-fully" (a symmetric NAT).
func newNATLab(t *testing.T, mode string) *natLab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("NAT lab: needs root (network namespaces, iptables)")
	}
	for _, c := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("NAT lab: needs the %s command (Debian packages iproute2, iptables)", c)
		}
	}
	removeStaleNATLabs(t)
	l := &natLab{t: t, prefix: fmt.Sprintf("p2pnat%d", os.Getpid())}
	names := []string{"inet", "r", "nat1", "nat2", "a", "b"}
	t.Cleanup(func() {
		for _, n := range names {
			exec.Command("ip", "netns", "del", l.ns(n)).Run()
		}
	})
	sh := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("NAT lab: %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	ip := func(ns string, args ...string) { sh(append([]string{"ip", "-n", l.ns(ns)}, args...)...) }
	inNS := func(ns string, args ...string) { sh(append([]string{"ip", "netns", "exec", l.ns(ns)}, args...)...) }
	veth := func(ns1, if1, ns2, if2 string) {
		sh("ip", "link", "add", if1, "netns", l.ns(ns1), "type", "veth", "peer", "name", if2, "netns", l.ns(ns2))
		ip(ns1, "link", "set", if1, "up")
		ip(ns2, "link", "set", if2, "up")
	}
	for _, n := range names {
		sh("ip", "netns", "add", l.ns(n))
		ip(n, "link", "set", "lo", "up")
	}
	ip("inet", "link", "add", "br0", "type", "bridge")
	ip("inet", "link", "set", "br0", "up")
	for _, n := range []string{"r", "nat1", "nat2"} {
		dev := "eth0"
		if strings.HasPrefix(n, "nat") {
			dev = "wan0"
		}
		veth("inet", "p-"+n, n, dev)
		ip("inet", "link", "set", "p-"+n, "master", "br0")
	}
	ip("r", "addr", "add", natRelayIP+"/24", "dev", "eth0")
	for i, side := range []string{"1", "2"} {
		nat, host := "nat"+side, []string{"a", "b"}[i]
		lan := "192.168." + side
		ip(nat, "addr", "add", natPublicNet+"."+side+"/24", "dev", "wan0")
		veth(nat, "lan0", host, "eth0")
		ip(nat, "addr", "add", lan+".1/24", "dev", "lan0")
		ip(host, "addr", "add", lan+".2/24", "dev", "eth0")
		ip(host, "route", "add", "default", "via", lan+".1")
		inNS(nat, "sysctl", "-qw", "net.ipv4.ip_forward=1")
		masq := []string{"iptables", "-t", "nat", "-A", "POSTROUTING", "-s", lan + ".0/24", "-o", "wan0", "-j", "MASQUERADE"}
		if mode != "" {
			masq = append(masq, mode)
		}
		inNS(nat, masq...)
		for _, chain := range []string{"INPUT", "FORWARD"} {
			inNS(nat, "iptables", "-A", chain, "-i", "wan0", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")
			inNS(nat, "iptables", "-A", chain, "-i", "wan0", "-j", "DROP")
		}
	}
	return l
}

// removeStaleNATLabs deletes the namespaces of labs whose test process is
// gone: a test binary that was killed (SIGKILL, or SIGTERM, which Go's test
// binaries do not catch) never ran its cleanup. Processes still inside them
// are killed first.
func removeStaleNATLabs(t *testing.T) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest, ok := strings.CutPrefix(name, "p2pnat")
		if !ok {
			continue
		}
		pid, _, ok := strings.Cut(rest, "-")
		if !ok || pid == "" {
			continue
		}
		if _, err := os.Stat("/proc/" + pid); err == nil {
			continue // its test is still running
		}
		if pids, err := exec.Command("ip", "netns", "pids", name).Output(); err == nil {
			for _, p := range strings.Fields(string(pids)) {
				exec.Command("kill", "-9", p).Run()
			}
		}
		if err := exec.Command("ip", "netns", "del", name).Run(); err == nil {
			t.Logf("NAT lab: removed %s, left by a test process that is gone", name)
		}
	}
}

// daemon starts p2pd in namespace ns with the lab's common flags.
func (l *natLab) daemon(ns string, extra ...string) *node {
	l.t.Helper()
	n := &node{t: l.t, repo: l.t.TempDir(), netns: l.ns(ns)}
	n.args = append([]string{"daemon", "--repo", n.repo, "--api", "/ip4/127.0.0.1/tcp/0",
		"--mdns=false", "--dht-prefix", "/p2pd-natlab"}, extra...)
	n.start()
	return n
}

// relay starts R: relay service, DHT server, the lab's only public node.
// Every node listens on TCP and QUIC, as p2pd does by default; R is given
// to the others by its TCP address.
func (l *natLab) relay(extra ...string) (*node, string) {
	l.t.Helper()
	r := l.daemon("r", append([]string{"--listen", "/ip4/" + natRelayIP + "/tcp/4001", "--listen", "/ip4/" + natRelayIP + "/udp/4001/quic-v1",
		"--bootstrap", "none", "--dht", "server", "--relay-service"}, extra...)...)
	return r, "/ip4/" + natRelayIP + "/tcp/4001/p2p/" + r.id
}

// dialIn connects to addr (host:port) from inside namespace ns: the socket
// is made on an OS thread moved into ns and back. The thread must survive:
// children started with Pdeathsig (every daemon here) die with the thread
// that started them, which may be this one.
func dialIn(ns, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer home.Close()
		target, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("setns %s: %w", ns, err)}
			return
		}
		c, err := net.DialTimeout("tcp", addr, 30*time.Second)
		if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread() // back home: the thread may be reused
		} // else the thread stays locked and ends with this goroutine
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// echoTransfer sends size random bytes through the forward at addr (in
// namespace ns) to an echo service and checks that the SHA-256 of what
// came back matches. It returns the time from the connection's start to
// the first byte back, and the whole exchange's time.
func echoTransfer(t *testing.T, ns, addr string, size int) (firstByte, total time.Duration, err error) {
	t.Helper()
	start := time.Now()
	c, err := dialIn(ns, addr)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	sent := sha256.New()
	go func() {
		src := io.TeeReader(io.LimitReader(rand.New(rand.NewSource(int64(size))), int64(size)), sent)
		io.CopyBuffer(c, src, make([]byte, 64<<10))
		c.(*net.TCPConn).CloseWrite()
	}()
	got := sha256.New()
	one := make([]byte, 1)
	if _, err := io.ReadFull(c, one); err != nil {
		return 0, 0, fmt.Errorf("first byte: %w", err)
	}
	firstByte = time.Since(start)
	got.Write(one)
	n, err := io.CopyBuffer(got, c, make([]byte, 64<<10))
	if err != nil {
		return 0, 0, err
	}
	total = time.Since(start)
	if n+1 != int64(size) || hex.EncodeToString(got.Sum(nil)) != hex.EncodeToString(sent.Sum(nil)) {
		return 0, 0, fmt.Errorf("%d of %d bytes came back, SHA-256 %x, sent %x", n+1, size, got.Sum(nil), sent.Sum(nil))
	}
	return firstByte, total, nil
}

// natEvents follows n's events (`p2pd events --json`, run in n's
// namespace) until the test ends.
func natEvents(t *testing.T, n *node) <-chan api.Event {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", n.netns, bin, "events", "--json", "--repo", n.repo)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	errb := &lockedBuffer{}
	cmd.Stderr = errb
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("p2pd events of %s: stderr: %s", n.id, errb.String())
		}
	})
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	ch := make(chan api.Event, 1024)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var ev api.Event
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				select {
				case ch <- ev:
				default: // nobody reads any more
				}
			}
		}
	}()
	return ch
}

// waitEvent reads events until one satisfies match.
func waitEvent(t *testing.T, ch <-chan api.Event, what string, match func(api.Event) bool) api.Event {
	t.Helper()
	timeout := time.After(2 * time.Minute)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("event stream ended before %s", what)
			}
			if match(ev) {
				return ev
			}
		case <-timeout:
			t.Fatalf("no event: %s", what)
		}
	}
}

// natPeers starts, in the lab, R, then A (reserving a slot on R, serving
// /x/echo, advertising under the rendezvous string) and B, and waits until
// both can punch holes.
func natPeers(t *testing.T, l *natLab, relayFlags ...string) (r, a, b *node, rAddr, ns string) {
	t.Helper()
	r, rAddr = l.relay(relayFlags...)
	ns = fmt.Sprintf("natlab-%d", os.Getpid())
	a = l.daemon("a", "--listen", "/ip4/0.0.0.0/tcp/4001", "--listen", "/ip4/0.0.0.0/udp/4001/quic-v1", "--bootstrap", rAddr,
		"--relay", rAddr, "--reachability", "private", "--rendezvous", ns)
	echo := (&netns{name: l.ns("a")}).echoProcessIn(t)
	var lst api.Listener
	a.mustJSON(&lst, "listen", "/x/echo", echo)
	b = l.daemon("b", "--listen", "/ip4/0.0.0.0/tcp/4001", "--listen", "/ip4/0.0.0.0/udp/4001/quic-v1", "--bootstrap", rAddr)

	eventually(t, time.Minute, func() error {
		var st api.Status
		a.mustJSON(&st, "status")
		if len(st.Relays) != 1 || !st.Relays[0].Active || !st.HolePunching.Ready {
			return fmt.Errorf("A not ready: %+v", st)
		}
		return nil
	})
	eventually(t, time.Minute, func() error {
		var st api.Status
		b.mustJSON(&st, "status")
		if !st.HolePunching.Ready {
			return fmt.Errorf("B cannot punch yet: %+v", st)
		}
		return nil
	})
	return r, a, b, rAddr, ns
}

// findAndForward has B find A under the rendezvous string through R's DHT
// and open a forward to it; it returns the forward's local address.
func findAndForward(t *testing.T, a, b *node, ns string) string {
	t.Helper()
	eventually(t, time.Minute, func() error {
		var found []api.FoundPeer
		b.mustJSON(&found, "find", ns, "--timeout", "10s")
		for _, p := range found {
			if p.ID == a.id {
				return nil
			}
		}
		return fmt.Errorf("B did not find A under %q: %+v", ns, found)
	})
	var fwd api.Listener
	b.mustJSON(&fwd, "forward", "/x/echo", "/ip4/127.0.0.1/tcp/0", "/p2p/"+a.id)
	return hostPort(t, fwd.ListenAddress)
}

// TestNATHolePunch: two peers behind port-preserving NATs. B finds A by
// rendezvous through R's DHT and forwards to it; the forward's first
// connection goes through R and is upgraded by hole punching, and 16 MiB
// cross intact over the direct connection. A's status shows the
// reservation and its circuit addresses.
func TestNATHolePunch(t *testing.T) {
	l := newNATLab(t, "")
	r, a, b, _, ns := natPeers(t, l)
	aEvents := natEvents(t, a)
	fwd := findAndForward(t, a, b, ns)

	first, total, err := echoTransfer(t, l.ns("b"), fwd, 16<<20)
	if err != nil {
		var ls []api.Listener
		b.mustJSON(&ls, "ls")
		t.Fatalf("16 MiB through the forward: %v; forwards: %+v", err, ls)
	}
	t.Logf("first forward connection: first byte after %s, 16 MiB echoed in %s", first, total)

	var peers []api.Peer
	b.mustJSON(&peers, "peers")
	var seen bool
	for _, p := range peers {
		if p.ID == a.id {
			seen = true
			if p.Connection != api.ConnectionDirect || p.Transport != "tcp" || !strings.HasPrefix(p.Address, "/ip4/"+natPublicNet+".1/tcp/") {
				t.Fatalf("B's connection to A: %+v; want direct, tcp, to NAT1's public address", p)
			}
		}
	}
	if !seen {
		t.Fatalf("A missing from B's peers: %+v", peers)
	}
	// A, which holds the reservation, runs the punch and reports it.
	waitEvent(t, aEvents, "A's successful hole punch with B", func(ev api.Event) bool {
		return ev.Type == api.EventHolePunch && ev.Peer == b.id && ev.HolePunch != nil &&
			ev.HolePunch.Kind == "result" && ev.HolePunch.Success
	})

	var st api.Status
	a.mustJSON(&st, "status")
	circuit := "/ip4/" + natRelayIP + "/tcp/4001/p2p/" + r.id + "/p2p-circuit"
	if st.Reachability != "private" || !st.ReachabilityForced || len(st.Relays) != 1 ||
		st.Relays[0].Peer != r.id || !st.Relays[0].Active || st.Relays[0].Expires == nil ||
		!slices.Contains(st.Relays[0].Addresses, circuit) ||
		!strings.Contains(strings.Join(st.Announced, " "), circuit+"/p2p/"+a.id) {
		t.Fatalf("A's status: %+v", st)
	}
}

// TestNATSymmetric: behind symmetric NATs (--random-fully) hole punching
// cannot work. With R's default limits the forward must not carry data
// over the relay: it fails within its dial timeout and last_error says
// why. With R unlimited, the forward carries 16 MiB relayed.
func TestNATSymmetric(t *testing.T) {
	l := newNATLab(t, "--random-fully")
	r, a, b, _, ns := natPeers(t, l)
	fwd := findAndForward(t, a, b, ns)

	if _, _, err := echoTransfer(t, l.ns("b"), fwd, 1<<20); err == nil {
		t.Fatal("the forward carried data behind symmetric NATs over a limited relay")
	}
	var ls []api.Listener
	b.mustJSON(&ls, "ls")
	if len(ls) != 1 || !strings.HasPrefix(ls[0].LastError, "no direct connection to "+a.id+": hole punching failed") ||
		!strings.Contains(ls[0].LastError, "the relay "+r.id+" allows only 128 KiB / 2m0s per connection") ||
		!strings.HasSuffix(ls[0].LastError, "see `p2pd status`") {
		t.Fatalf("forward after a failed punch: %+v", ls)
	}
	t.Logf("last_error: %s", ls[0].LastError)

	// R again, with no limits: A reserves anew, and relayed connections
	// are no longer limited, so forwards use them.
	r.kill()
	r.args = append(r.args, "--relay-limit-data", "0", "--relay-limit-duration", "0")
	r.start()
	eventually(t, 2*time.Minute, func() error {
		var st api.Status
		a.mustJSON(&st, "status")
		if len(st.Relays) != 1 || !st.Relays[0].Active || st.Relays[0].LimitData != 0 {
			return fmt.Errorf("A has no unlimited reservation yet: %+v", st.Relays)
		}
		return nil
	})
	first, total, err := echoTransfer(t, l.ns("b"), fwd, 16<<20)
	if err != nil {
		b.mustJSON(&ls, "ls")
		t.Fatalf("16 MiB through an unlimited relay: %v; forwards: %+v", err, ls)
	}
	t.Logf("relayed: first byte after %s, 16 MiB echoed in %s", first, total)
	var peers []api.Peer
	b.mustJSON(&peers, "peers")
	for _, p := range peers {
		if p.ID == a.id && p.Connection != api.ConnectionRelayed {
			t.Fatalf("B's connection to A behind symmetric NATs: %+v; want relayed", p)
		}
	}
}

// TestNATBench measures, in the NAT lab, the time from B's first forward
// connection to its first byte back (relay dial, hole punch, stream) and
// the throughput over the punched connection against a second pair of
// daemons in the same namespaces that reach each other routed, without
// NAT; the two paths alternate and each ratio is taken within a round.
// Timings are reported, never asserted. It runs only with
// P2PD_NAT_BENCH=1 (as root):
//
//	P2PD_NAT_BENCH=1 go test -count=1 -v -run TestNATBench ./e2e/
func TestNATBench(t *testing.T) {
	if os.Getenv("P2PD_NAT_BENCH") == "" {
		t.Skip("benchmark: set P2PD_NAT_BENCH=1 to run it")
	}
	const size, rounds = 256 << 20, 5
	l := newNATLab(t, "")
	_, a, b, _, ns := natPeers(t, l)
	fwd := findAndForward(t, a, b, ns)
	first, _, err := echoTransfer(t, l.ns("b"), fwd, 1<<10)
	if err != nil {
		t.Fatal(err)
	}
	var peers []api.Peer
	b.mustJSON(&peers, "peers")
	for _, p := range peers {
		if p.ID == a.id && p.Connection != api.ConnectionDirect {
			t.Fatalf("not punched: %+v", p)
		}
	}

	// LAN to LAN traffic is routed without NAT; a second pair of daemons
	// (port 4002) uses that path.
	for i, side := range []string{"1", "2"} {
		nat, other := l.ns("nat"+side), []string{"2", "1"}[i]
		otherLAN := "192.168." + other + ".0/24"
		for _, args := range [][]string{
			{"iptables", "-t", "nat", "-I", "POSTROUTING", "1", "-d", otherLAN, "-j", "RETURN"},
			{"iptables", "-I", "FORWARD", "1", "-s", otherLAN, "-j", "ACCEPT"},
			{"ip", "route", "add", otherLAN, "via", natPublicNet + "." + other},
		} {
			if out, err := exec.Command("ip", append([]string{"netns", "exec", nat}, args...)...).CombinedOutput(); err != nil {
				t.Fatalf("%v: %v: %s", args, err, out)
			}
		}
	}
	a2 := l.daemon("a", "--listen", "/ip4/0.0.0.0/tcp/4002", "--bootstrap", "none", "--dht", "off")
	echo := (&netns{name: l.ns("a")}).echoProcessIn(t)
	var lst api.Listener
	a2.mustJSON(&lst, "listen", "/x/echo", echo)
	b2 := l.daemon("b", "--listen", "/ip4/0.0.0.0/tcp/4002", "--bootstrap", "none", "--dht", "off")
	var f api.Listener
	b2.mustJSON(&f, "forward", "/x/echo", "/ip4/127.0.0.1/tcp/0", "/ip4/192.168.1.2/tcp/4002/p2p/"+a2.id)
	plainFwd := hostPort(t, f.ListenAddress)

	rate := func(addr string) float64 {
		_, total, err := echoTransfer(t, l.ns("b"), addr, size)
		if err != nil {
			t.Fatal(err)
		}
		return float64(size) / (1 << 20) / total.Seconds()
	}
	var punched, plain, ratios []float64
	for range rounds {
		p, q := rate(fwd), rate(plainFwd)
		punched, plain, ratios = append(punched, p), append(plain, q), append(ratios, p/q)
	}
	t.Logf("first forward connection across the NATs: first byte after %s", first)
	t.Logf("256 MiB echoed, MiB/s each way, median of %d rounds: punched %.0f %v, no NAT %.0f %v",
		rounds, median(punched), punched, median(plain), plain)
	t.Logf("ratio punched/no NAT within a round: median %.2f, all %.2f", median(ratios), ratios)
}

// median of a few values.
func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s[len(s)/2]
}

// TestNATAutoReachability: without --reachability, a node behind a NAT
// learns that it is private from the relay's AutoNAT service, and then
// announces its circuit address.
func TestNATAutoReachability(t *testing.T) {
	l := newNATLab(t, "")
	r, rAddr := l.relay()
	a := l.daemon("a", "--listen", "/ip4/0.0.0.0/tcp/4001", "--listen", "/ip4/0.0.0.0/udp/4001/quic-v1", "--bootstrap", rAddr, "--relay", rAddr)
	events := natEvents(t, a)
	circuit := "/ip4/" + natRelayIP + "/tcp/4001/p2p/" + r.id + "/p2p-circuit/p2p/" + a.id
	waitEvent(t, events, "reachability_changed to private", func(ev api.Event) bool {
		return ev.Type == api.EventReachabilityChanged && ev.Reachability == "private"
	})
	eventually(t, 2*time.Minute, func() error {
		var st api.Status
		a.mustJSON(&st, "status")
		if st.Reachability != "private" || st.ReachabilityForced || !slices.Contains(st.Announced, circuit) {
			return fmt.Errorf("A has not found itself private and announced %s: %+v", circuit, st)
		}
		return nil
	})
}
