package e2e

import (
	"fmt"
	"strings"
	"testing"
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
