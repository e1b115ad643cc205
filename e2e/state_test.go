package e2e

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/p2pd/p2pd/api"
)

// TestOneDaemonPerRepo: a second `p2pd daemon` on a repo whose daemon runs
// is refused with exit 1 and a message naming the running one; so are `init`
// and `chat --repo`. The first daemon keeps working, and once it is killed
// (SIGKILL: no clean shutdown) the kernel has released the lock and a new
// daemon starts on the repo.
func TestOneDaemonPerRepo(t *testing.T) {
	n := startDaemon(t, "--bootstrap", "none", "--dht", "off")
	want := fmt.Sprintf("a daemon is already running for %s (API at %s, pid %d)", n.repo, n.api, n.cmd.Process.Pid)
	for _, args := range [][]string{
		baseArgs(n.repo),
		{"init", "--repo", n.repo},
		{"chat", "--repo", n.repo, "--rendezvous", "lock-test", "--bootstrap", "none", "--dht", "off", "--mdns=false",
			"--listen", "/ip4/127.0.0.1/tcp/0"},
	} {
		r := p2pd(t, args...)
		if r.code != 1 || !strings.Contains(r.stderr, want) {
			t.Fatalf("p2pd %v: %s\nwant stderr containing %q", args, r, want)
		}
	}
	if r := n.cli("ls"); r.code != 0 {
		t.Fatalf("first daemon after the refusals: %s", r)
	}
	n.restart() // kill -9, then start again on the same repo
	if r := n.cli("id"); r.code != 0 || !strings.Contains(r.stdout, n.id) {
		t.Fatalf("restarted daemon: %s", r)
	}
}

// TestFailedTunnelsAcrossRestart: a saved forward whose port is taken when
// the daemon restarts is listed as failed with the reason (ls text output
// stays one line per entry on stdout), is never saved twice, and comes back
// with `ls --retry` once the port is free. An entry of tunnels.json this
// version cannot decode is skipped with a log line saying why and kept in
// the file; an unreadable tunnels.json is moved aside with a log line.
func TestFailedTunnelsAcrossRestart(t *testing.T) {
	n := startDaemon(t, "--bootstrap", "none", "--dht", "off")
	const peer = "/p2p/12D3KooWAEYtYAwFkN95p97zyuV2QZWDUnuY2fcbvMDtX7C9bUqF"
	var fwd api.Listener
	n.mustJSON(&fwd, "forward", "/x/held", "/ip4/127.0.0.1/tcp/0", peer)
	svc := startService(t, echoHandler)
	n.mustJSON(&fwd, "listen", "/x/fine", svc.maddr())
	n.mustJSON(&fwd, "forward", "/x/held", "/ip4/127.0.0.1/tcp/0", peer)
	held := fwd.ListenAddress
	n.kill()

	// A newer p2pd's entry, and the port taken by someone else.
	path := filepath.Join(n.repo, "tunnels.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	future := `{"kind":"listen","protocol":"/x/future","target_address":"/ip4/127.0.0.1/tcp/9","qos":"high"}`
	b = bytes.Replace(b, []byte(`"tunnels": [`), []byte(`"tunnels": [`+future+`,`), 1)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", hostPort(t, held))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	n.start()

	var ls []api.Listener
	n.mustJSON(&ls, "ls")
	var states []string
	for _, l := range ls {
		states = append(states, l.Kind+" "+l.Protocol+" "+l.State)
	}
	want := []string{"forward /x/held active", "forward /x/held failed", "listen /x/fine active"}
	if !slices.Equal(states, want) || ls[1].ListenAddress != held || !strings.Contains(ls[1].LastError, "address "+held+" is already in use") {
		t.Fatalf("ls after restart: %+v\nwant states %v", ls, want)
	}
	r := n.cli("ls")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 3 || lines[1] != "/x/held "+held+" "+peer ||
		!strings.Contains(r.stderr, "/x/held "+held+": failed to restore: ") {
		t.Fatalf("ls text: %s", r)
	}
	logs := n.errb.String()
	if !strings.Contains(logs, "skipping an entry of tunnels.json") || !strings.Contains(logs, `unknown field \"qos\"`) {
		t.Fatalf("daemon log does not say which entry was skipped and why:\n%s", logs)
	}
	// Re-adding while the port is taken fails and writes nothing.
	if r := n.cli("forward", "/x/held", held, peer); r.code == 0 {
		t.Fatalf("forward on a taken port: %s", r)
	}
	if c := strings.Count(readFile(t, path), held); c != 1 {
		t.Fatalf("tunnels.json names %s %d times:\n%s", held, c, readFile(t, path))
	}
	ln.Close()
	n.mustJSON(&ls, "ls", "--retry")
	if len(ls) != 3 || ls[1].State != "active" || ls[1].ListenAddress != held {
		t.Fatalf("ls --retry once the port is free: %+v", ls)
	}
	saved := readFile(t, path)
	if strings.Count(saved, held) != 1 || !strings.Contains(saved, `"qos": "high"`) && !strings.Contains(saved, `"qos":"high"`) {
		t.Fatalf("tunnels.json after the retry:\n%s", saved)
	}

	// An unreadable file is moved aside, and the daemon starts without it.
	n.kill()
	if err := os.WriteFile(path, []byte("{\"version\": 1, \"tunn"), 0o600); err != nil {
		t.Fatal(err)
	}
	n.start()
	n.mustJSON(&ls, "ls")
	aside, _ := filepath.Glob(path + ".bad-*")
	if len(ls) != 0 || len(aside) != 1 || !strings.Contains(n.errb.String(), "moved aside") {
		t.Fatalf("unreadable tunnels.json: ls %+v, moved aside to %v, log:\n%s", ls, aside, n.errb.String())
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
