package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/p2pd/p2pd/api"
)

type foundPeer struct {
	ID        string   `json:"id"`
	Addresses []string `json:"addresses"`
}

type peerJSON struct {
	ID        string  `json:"id"`
	Address   string  `json:"address"`
	Direction string  `json:"direction"`
	LatencyMS float64 `json:"latency_ms"`
}

// network starts a bootstrap daemon and n-1 daemons bootstrapped through it,
// all on a private DHT prefix. extra[i] are flags for daemon i (i ≥ 1).
func network(t *testing.T, prefix string, n int, extra map[int][]string) []*node {
	t.Helper()
	boot := startDaemon(t, "--bootstrap", "none", "--dht", "server", "--dht-prefix", prefix)
	nodes := []*node{boot}
	for i := 1; i < n; i++ {
		args := append([]string{"--bootstrap", boot.addr(), "--dht-prefix", prefix}, extra[i]...)
		nodes = append(nodes, startDaemon(t, args...))
	}
	return nodes
}

func connectedTo(n *node, id string) error {
	var peers []peerJSON
	n.mustJSON(&peers, "peers")
	for _, p := range peers {
		if p.ID == id {
			return nil
		}
	}
	return fmt.Errorf("%s not among %d peers of %s", id, len(peers), n.id)
}

// TestTenDaemons is the foundation's end-to-end case: ten daemon processes
// on 127.0.0.1 with a private DHT; two rendezvous on "meet-here", find each
// other and connect on their own; a node that denies 127.0.0.0/8 can neither
// dial nor be dialled; a killed daemon keeps its peer ID.
func TestTenDaemons(t *testing.T) {
	const ns = "meet-here"
	nodes := network(t, "/e2e-ten", 10, map[int][]string{
		1: {"--rendezvous", ns},
		2: {"--rendezvous", ns},
	})
	a, b := nodes[1], nodes[2]

	t.Run("rendezvous", func(t *testing.T) {
		for _, pair := range [][2]*node{{a, b}, {b, a}} {
			var found []foundPeer
			pair[0].mustJSON(&found, "find", ns, "--timeout", "30s")
			ok := false
			for _, f := range found {
				if f.ID == pair[0].id {
					t.Errorf("find returned the node itself")
				}
				if f.ID == pair[1].id && len(f.Addresses) > 0 {
					ok = true
				}
			}
			if !ok {
				t.Fatalf("%s did not find %s under %q: %+v", pair[0].id, pair[1].id, ns, found)
			}
		}
		// The rendezvous loops connect the two without being asked.
		eventually(t, 30*time.Second, func() error { return connectedTo(a, b.id) })
		eventually(t, 30*time.Second, func() error { return connectedTo(b, a.id) })
		// A third node that did not advertise finds both.
		var found []foundPeer
		nodes[9].mustJSON(&found, "find", ns, "--timeout", "30s")
		if len(found) == 0 {
			t.Fatalf("node 9 found nobody under %q", ns)
		}
	})

	t.Run("deny", func(t *testing.T) {
		denied := startDaemon(t, "--deny", "127.0.0.0/8", "--bootstrap", "none", "--dht-prefix", "/e2e-ten")
		other := nodes[5]
		r := denied.cli("connect", other.addr())
		if r.code != 1 || !strings.Contains(r.stderr, "connecting to "+other.id) {
			t.Fatalf("denied node dialled out: %s", r)
		}
		r = other.cli("connect", denied.addr())
		if r.code != 1 {
			t.Fatalf("other node dialled the denied node: %s", r)
		}
		if err := connectedTo(other, denied.id); err == nil {
			t.Fatalf("connection to the denied node exists")
		}
		var peers []peerJSON
		denied.mustJSON(&peers, "peers")
		if len(peers) != 0 {
			t.Fatalf("denied node has peers: %+v", peers)
		}
	})

	t.Run("restart keeps peer id", func(t *testing.T) {
		n := nodes[7]
		before := n.id
		n.restart() // SIGKILL, then start again on the same repo
		if n.id != before {
			t.Fatalf("peer id changed across restart: %s -> %s", before, n.id)
		}
		var id api.ID
		n.mustJSON(&id, "id")
		if id.ID != before {
			t.Fatalf("id says %s, want %s", id.ID, before)
		}
	})
}

func TestAPIRefusesUnauthenticated(t *testing.T) {
	n := startDaemon(t, "--bootstrap", "none", "--dht", "off")
	base := "http://" + strings.TrimPrefix(strings.Replace(n.api, "/ip4/", "", 1), "/")
	base = strings.Replace(base, "/tcp/", ":", 1)
	tok, err := os.ReadFile(filepath.Join(n.repo, "api.token"))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tok))
	tests := []struct {
		name   string
		header map[string]string
		host   string
		want   int
	}{
		{"no token", nil, "", http.StatusUnauthorized},
		{"wrong token", map[string]string{"Authorization": "Bearer nope"}, "", http.StatusUnauthorized},
		{"right token", map[string]string{"Authorization": "Bearer " + token}, "", http.StatusOK},
		{"browser origin", map[string]string{"Authorization": "Bearer " + token, "Origin": "http://evil.example"}, "", http.StatusForbidden},
		{"foreign host", map[string]string{"Authorization": "Bearer " + token}, "evil.example:5055", http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", base+api.RouteID, nil)
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			if tt.host != "" {
				req.Host = tt.host
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
	// The CLI with another repo's token is refused with a clear error.
	other := t.TempDir()
	if r := p2pd(t, "init", "--repo", other); r.code != 0 {
		t.Fatal(r)
	}
	r := p2pd(t, "id", "--repo", other, "--api", n.api)
	if r.code != 1 || !strings.Contains(r.stderr, "wrong API token") {
		t.Fatalf("%s", r)
	}
}

func TestCleanShutdownRemovesAPIFile(t *testing.T) {
	n := startDaemon(t, "--bootstrap", "none", "--dht", "off")
	apiFile := filepath.Join(n.repo, "api")
	b, err := os.ReadFile(apiFile)
	if err != nil || strings.TrimSpace(string(b)) != n.api {
		t.Fatalf("api file %q (%v), want %s", b, err, n.api)
	}
	if err := n.stop(); err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, n.errb.String())
	}
	if _, err := os.Stat(apiFile); !os.IsNotExist(err) {
		t.Fatalf("api file left behind: %v", err)
	}
	r := n.cli("id")
	if r.code != 1 || !strings.Contains(r.stderr, "start one with `p2pd daemon") {
		t.Fatalf("no daemon: %s", r)
	}
}

func TestKilledDaemonIsReportedUnreachable(t *testing.T) {
	n := startDaemon(t, "--bootstrap", "none", "--dht", "off")
	n.kill() // leaves a stale api file
	r := n.cli("peers")
	if r.code != 1 || !strings.Contains(r.stderr, "cannot reach the daemon at "+n.api) ||
		!strings.Contains(r.stderr, "is `p2pd daemon --repo "+n.repo+"` running?") {
		t.Fatalf("%s", r)
	}
}

func TestUnixSocketAPI(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "api.sock")
	n := startDaemon(t, "--bootstrap", "none", "--dht", "off", "--api", "/unix"+sock)
	if n.api != "/unix"+sock {
		t.Fatalf("api line %q", n.api)
	}
	st, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %#o, want 0600", st.Mode().Perm())
	}
	var id api.ID
	n.mustJSON(&id, "id")
	if id.ID != n.id {
		t.Fatalf("id over unix socket: %s, want %s", id.ID, n.id)
	}
	if !strings.HasPrefix(id.AgentVersion, "p2pd/") {
		t.Fatalf("agent version %q", id.AgentVersion)
	}
}

func TestTwoDaemonsPortZero(t *testing.T) {
	a := startDaemon(t, "--bootstrap", "none", "--dht", "off")
	b := startDaemon(t, "--bootstrap", "none", "--dht", "off")
	if a.api == b.api {
		t.Fatalf("both daemons report api %s", a.api)
	}
	var res struct{ ID string }
	a.mustJSON(&res, "connect", b.addr())
	if res.ID != b.id {
		t.Fatalf("connect answered %q", res.ID)
	}
	eventually(t, 10*time.Second, func() error { return connectedTo(b, a.id) })
	var peers []peerJSON
	a.mustJSON(&peers, "peers")
	if len(peers) != 1 || peers[0].Direction != "outbound" {
		t.Fatalf("peers of a: %+v", peers)
	}
}

func TestBadInput(t *testing.T) {
	noRepo := filepath.Join(t.TempDir(), "ro")
	os.MkdirAll(noRepo, 0o500)
	file := filepath.Join(t.TempDir(), "plainfile")
	os.WriteFile(file, []byte("x"), 0o600)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"bad listen multiaddr", []string{"daemon", "--listen", "/ip4/1.2.3.4/tcpx/1"}, 2, `invalid --listen value "/ip4/1.2.3.4/tcpx/1"`},
		{"bad deny cidr", []string{"daemon", "--deny", "10.0.0.0/99"}, 2, `invalid --deny value "10.0.0.0/99"`},
		{"bad allow cidr", []string{"daemon", "--allow", "banana"}, 2, `invalid --allow value "banana"`},
		{"unknown dht mode", []string{"daemon", "--dht", "sometimes"}, 2, `invalid --dht value "sometimes": want auto, server, client or off`},
		{"bad dht prefix", []string{"daemon", "--dht-prefix", "noslash"}, 2, `invalid --dht-prefix value "noslash": a DHT protocol prefix must start with "/"`},
		{"negative max-procs", []string{"daemon", "--max-procs", "-1"}, 2, "invalid --max-procs value -1: want a number of cores, or 0 for Go's default"},
		{"max-procs not a number", []string{"daemon", "--max-procs", "two"}, 2, `invalid value "two" for flag -max-procs`},
		{"bootstrap without peer id", []string{"daemon", "--bootstrap", "/ip4/127.0.0.1/tcp/4001"}, 2, `invalid --bootstrap value "/ip4/127.0.0.1/tcp/4001"`},
		{"bad api address", []string{"daemon", "--api", "/ip4/127.0.0.1/udp/5"}, 1, "API address /ip4/127.0.0.1/udp/5"},
		{"repo is a file", []string{"daemon", "--repo", file}, 1, "--repo " + file},
		{"unknown flag", []string{"daemon", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{"unknown command", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{"connect without peer id", []string{"connect", "/ip4/127.0.0.1/tcp/1"}, 2, `invalid MULTIADDR value "/ip4/127.0.0.1/tcp/1"`},
		{"connect without argument", []string{"connect"}, 2, "missing MULTIADDR/p2p/ID"},
		{"find bad timeout", []string{"find", "x", "--timeout", "-1s"}, 2, "invalid --timeout value -1s"},
		{"id with bad api", []string{"id", "--api", "nonsense"}, 2, `invalid --api value "nonsense"`},
	}
	if os.Geteuid() != 0 {
		tests = append(tests, struct {
			name string
			args []string
			code int
			want string
		}{"repo not writable", []string{"daemon", "--repo", noRepo}, 1, "not writable"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.args[0] == "daemon" && !contains(args, "--repo") {
				args = append(args, "--repo", t.TempDir())
			}
			r := p2pd(t, args...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("want exit %d and stderr containing %q; got %s", tt.code, tt.want, r)
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestRepoKeyProblemsAreErrors(t *testing.T) {
	tests := []struct {
		name   string
		mangle func(repo string)
		want   string
	}{
		{"key readable by others", func(repo string) { os.Chmod(filepath.Join(repo, "identity.key"), 0o644) }, "has mode 0644, want 0600"},
		{"corrupt key", func(repo string) { os.WriteFile(filepath.Join(repo, "identity.key"), []byte("not a key"), 0o600) }, "is corrupt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repo := t.TempDir()
			if r := p2pd(t, "init", "--repo", repo); r.code != 0 {
				t.Fatal(r)
			}
			tt.mangle(repo)
			before, _ := os.ReadFile(filepath.Join(repo, "identity.key"))
			r := p2pd(t, append(baseArgs(repo), "--bootstrap", "none", "--dht", "off")...)
			if r.code != 1 || !strings.Contains(r.stderr, "--repo "+repo) || !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("want exit 1 naming --repo and %q; got %s", tt.want, r)
			}
			after, _ := os.ReadFile(filepath.Join(repo, "identity.key"))
			if string(before) != string(after) {
				t.Fatalf("the key file was replaced")
			}
		})
	}
}

// TestMaxProcs checks the cores a daemon runs on, as its metrics report
// them: --max-procs when given, else half of what the runtime sees.
func TestMaxProcs(t *testing.T) {
	set := startDaemon(t, "--bootstrap", "none", "--max-procs", "3")
	if got := gauge(t, set, "go_sched_gomaxprocs_threads"); got != 3 {
		t.Errorf("--max-procs 3: the daemon runs on %v cores", got)
	}
	if os.Getenv("GOMAXPROCS") != "" {
		t.Skip("GOMAXPROCS is set in the environment: the default is not used")
	}
	def := startDaemon(t, "--bootstrap", "none")
	if got, want := gauge(t, def, "go_sched_gomaxprocs_threads"), float64(runtime.GOMAXPROCS(0)); got != want {
		t.Errorf("default: the daemon runs on %v cores, want Go's default %v", got, want)
	}
	// The stream registry's bridge-engine failures are exported, and none
	// happened.
	if got := gauge(t, def, "p2pd_streams_engine_failures_total"); got != 0 {
		t.Errorf("p2pd_streams_engine_failures_total = %v on a fresh daemon, want 0", got)
	}
}
