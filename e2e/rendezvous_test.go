package e2e

import (
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/p2pd/p2pd/api"
)

// tagHandler answers a connection, once the client has sent all it sends,
// with tag: which service served it.
func tagHandler(tag string) func(net.Conn) {
	return func(c net.Conn) {
		_, _ = io.Copy(io.Discard, c)
		_, _ = c.Write([]byte(tag))
	}
}

// whoServes makes one connection to addr (host:port), sends a line,
// half-closes and returns what came back.
func whoServes(addr string) (string, error) {
	c, err := dialOnce(addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	if _, err := c.Write([]byte("who?\n")); err != nil {
		return "", err
	}
	_ = c.(*net.TCPConn).CloseWrite()
	b, err := io.ReadAll(c)
	return string(b), err
}

// forwardEntry returns the forward of n listening on listen.
func forwardEntry(t *testing.T, n *node, listen string) api.Listener {
	t.Helper()
	var ls []api.Listener
	n.mustJSON(&ls, "ls")
	for _, l := range ls {
		if l.Kind == api.KindForward && l.ListenAddress == listen {
			return l
		}
	}
	t.Fatalf("no forward on %s among %+v", listen, ls)
	return api.Listener{}
}

// TestForwardToRendezvousName runs a forward to @NAME with two daemons
// advertising NAME and serving the protocol: failover stays on one peer and
// moves to the other when it is stopped; round-robin spreads 20
// connections over both; the forward comes back after a restart.
func TestForwardToRendezvousName(t *testing.T) {
	const ns = "e2e-team"
	nodes := network(t, "/e2e-name", 4, map[int][]string{
		1: {"--rendezvous", ns},
		2: {"--rendezvous", ns},
	})
	b, c, a := nodes[1], nodes[2], nodes[3]
	byID := map[string]string{b.id: "b", c.id: "c"}
	for n, tag := range map[*node]string{b: "b", c: "c"} {
		svc := startService(t, tagHandler(tag))
		port := strings.TrimPrefix(svc.maddr(), "/ip4/127.0.0.1/tcp/")
		if r := n.cli("listen", "/x/who", port); r.code != 0 { // the short form: a port alone
			t.Fatalf("listen: %s", r)
		}
	}
	// Both advertise before the forward's first lookup.
	eventually(t, time.Minute, func() error {
		var found []foundPeer
		a.mustJSON(&found, "find", ns, "--timeout", "10s")
		if len(found) < 2 {
			return fmt.Errorf("found %d of the 2 peers advertising %s", len(found), ns)
		}
		return nil
	})

	var fo api.Listener
	a.mustJSON(&fo, "forward", "/x/who", "0", "@"+ns)
	if fo.TargetAddress != "@"+ns || fo.Pick != api.PickFailover {
		t.Fatalf("forward: target %q pick %q; want @%s, failover", fo.TargetAddress, fo.Pick, ns)
	}
	var rr api.Listener
	a.mustJSON(&rr, "forward", "/x/who", "127.0.0.1:0", "@"+ns, "--pick", "round-robin")
	for _, l := range []api.Listener{fo, rr} {
		eventually(t, time.Minute, func() error {
			if got := forwardEntry(t, a, l.ListenAddress).Candidates; len(got) != 2 {
				return fmt.Errorf("candidates %v, want both peers", got)
			}
			return nil
		})
	}

	t.Run("round-robin", func(t *testing.T) {
		served := map[string]int{}
		for range 20 {
			tag, err := whoServes(hostPort(t, rr.ListenAddress))
			if err != nil {
				t.Fatal(err)
			}
			served[tag]++
		}
		if served["b"] < 5 || served["c"] < 5 || served["b"]+served["c"] != 20 {
			t.Fatalf("20 connections went %v; want them spread over b and c", served)
		}
	})

	t.Run("failover", func(t *testing.T) {
		addr := hostPort(t, fo.ListenAddress)
		first, err := whoServes(addr)
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if tag, err := whoServes(addr); err != nil || tag != first {
				t.Fatalf("failover moved from %s to %q (%v) while %s worked", first, tag, err, first)
			}
		}
		l := forwardEntry(t, a, fo.ListenAddress)
		if byID[l.Peer] != first {
			t.Fatalf("ls shows peer %s in use, want %s's", l.Peer, first)
		}
		stopped := map[string]*node{"b": b, "c": c}[first]
		stopped.kill()
		eventually(t, time.Minute, func() error {
			if connectedTo(a, stopped.id) == nil {
				return fmt.Errorf("still connected to the stopped peer")
			}
			return nil
		})
		tag, err := whoServes(addr)
		if err != nil || tag == first || tag == "" {
			t.Fatalf("after %s stopped: %q, %v; want the other peer", first, tag, err)
		}
		if l := forwardEntry(t, a, fo.ListenAddress); byID[l.Peer] != tag {
			t.Fatalf("ls shows peer %s in use, want %s's", l.Peer, tag)
		}
	})

	t.Run("persisted", func(t *testing.T) {
		a.restart()
		var ls []api.Listener
		a.mustJSON(&ls, "ls")
		var got []string
		for _, l := range ls {
			got = append(got, l.TargetAddress+" "+l.Pick)
		}
		slices.Sort(got)
		want := []string{"@" + ns + " failover", "@" + ns + " round-robin"}
		if !slices.Equal(got, want) {
			t.Fatalf("after a restart ls has %q, want %q", got, want)
		}
	})
}

// TestRefusedForwardSaysWhy checks that a connection refused by the far
// side's --allow-peer list puts the reason into the forwarding side's
// last_error and log, and that a bare peer ID works as forward target
// and connect argument.
func TestRefusedForwardSaysWhy(t *testing.T) {
	a, b := pair(t)
	other := startDaemon(t, "--bootstrap", "none", "--dht", "off")
	svc := startService(t, tagHandler("secret"))
	if r := b.cli("listen", "/x/secret", svc.maddr(), "--allow-peer", other.id); r.code != 0 {
		t.Fatalf("listen: %s", r)
	}
	if r := a.cli("connect", b.addr()); r.code != 0 {
		t.Fatalf("connect: %s", r)
	}
	if r := a.cli("connect", b.id); r.code != 0 { // a bare ID: the address is known now
		t.Fatalf("connect %s: %s", b.id, r)
	}
	var f api.Listener
	a.mustJSON(&f, "forward", "/x/secret", "0", b.id)
	if f.TargetAddress != "/p2p/"+b.id {
		t.Fatalf("forward target %q, want /p2p/%s", f.TargetAddress, b.id)
	}
	if got, err := whoServes(hostPort(t, f.ListenAddress)); got != "" {
		t.Fatalf("a refused peer got %q (%v)", got, err)
	}
	want := fmt.Sprintf("refused by %s: not in the listener's --allow-peer list", b.id)
	eventually(t, 30*time.Second, func() error {
		if l := forwardEntry(t, a, f.ListenAddress); l.LastError != want {
			return fmt.Errorf("last_error %q, want %q", l.LastError, want)
		}
		return nil
	})
	eventually(t, 30*time.Second, func() error {
		if !strings.Contains(a.errb.String(), want) {
			return fmt.Errorf("the forwarding daemon did not log %q", want)
		}
		return nil
	})
	if svc.acceptCount() != 0 {
		t.Fatalf("the service behind the allow list was dialled")
	}
}

// TestErrorsSayWhatToDo checks the next steps in the errors of a real
// daemon, and close's words.
func TestErrorsSayWhatToDo(t *testing.T) {
	a := startDaemon(t, "--bootstrap", "none", "--dht", "off")
	svc := startService(t, echoHandler)
	if r := a.cli("listen", "/x/twice", svc.maddr()); r.code != 0 {
		t.Fatalf("listen: %s", r)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port := fmt.Sprint(busy.Addr().(*net.TCPAddr).Port)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"listen", "/x/twice", svc.maddr()}, "p2pd listen: listener already registered for /x/twice (close it with `p2pd close -p /x/twice`)\n"},
		{[]string{"listen", "/ssh", "22"}, "p2pd listen: protocol name must be within '/x/' namespace: the protocol must start with /x/ (try /x/ssh, or pass --allow-custom-protocol)\n"},
		{[]string{"forward", "/x/web", port, "/p2p/12D3KooWAEYtYAwFkN95p97zyuV2QZWDUnuY2fcbvMDtX7C9bUqF"}, "p2pd forward: port " + port + " is already in use (pick another, or 0 for any)\n"},
		{[]string{"close", "-p", "/x/typo"}, "p2pd close: no listener matches -p /x/typo (see `p2pd ls`)\n"},
	}
	for _, tt := range tests {
		r := a.cli(tt.args...)
		if r.stderr != tt.want {
			t.Errorf("%v: %s\nwant stderr %q", tt.args, r, tt.want)
		}
	}
	if r := a.cli("close", "-p", "/x/twice"); r.code != 0 || r.stdout != "1\n" {
		t.Fatalf("close: %s", r)
	}
}
