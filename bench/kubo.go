package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// The kubo path: two kubo daemons (`ipfs daemon`) on loopback, one
// forwarding a local port to the other's `ipfs p2p listen` with
// `ipfs p2p forward`, the setup p2pd's forward is the alternative to. Each
// daemon has a repository of its own made with kubo's "test" profile
// (loopback TCP only, no bootstrap peers, no mDNS, no AutoTLS, no
// AutoConf), stream mounting switched on, no routing (like p2pd's
// `--dht off`), no providing and no gateway; the resource manager keeps
// kubo's defaults. bench/kubo/build.sh builds the binary.

// kuboConfig is what `ipfs config --json` sets on each repository after
// `ipfs init --profile test`.
var kuboConfig = [][2]string{
	{"Experimental.Libp2pStreamMounting", "true"},
	{"Addresses.Gateway", "[]"},
	{"Routing.Type", `"none"`},
	{"Provide.Enabled", "false"},
}

// kuboDaemon is a running `ipfs daemon`.
type kuboDaemon struct {
	*child
	bin    string
	repo   string
	id     string
	swarm  string // HOST:PORT of its TCP swarm listener
	execAt time.Time
	// startup is the time from exec to "Daemon is ready".
	startup time.Duration
}

// kuboEnv is the environment of every kubo command on repo.
func kuboEnv(repo string) []string {
	return []string{"IPFS_PATH=" + repo, "IPFS_TELEMETRY=off"}
}

// ipfs runs one kubo command on d's repository and returns its stdout.
func (d *kuboDaemon) ipfs(ctx context.Context, args ...string) (string, error) {
	return runIPFS(ctx, d.bin, d.repo, args...)
}

func runIPFS(ctx context.Context, bin, repo string, args ...string) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(cctx, bin, args...)
	cmd.Env = append(os.Environ(), kuboEnv(repo)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("ipfs %s (repo %s): %w: %s", strings.Join(args, " "), repo, err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// kuboMissing says why the kubo path is not measured, or "" when it is.
func kuboMissing(bin string) string {
	if bin == "" {
		return "kubo not measured: no -kubo PATH given (bench/kubo/build.sh builds the ipfs binary)"
	}
	st, err := os.Stat(bin)
	switch {
	case err != nil:
		return fmt.Sprintf("kubo not measured: -kubo %s: %v (bench/kubo/build.sh builds it)", bin, err)
	case st.IsDir() || st.Mode()&0o111 == 0:
		return fmt.Sprintf("kubo not measured: -kubo %s is not an executable file", bin)
	}
	return ""
}

// startKubo initialises a kubo repository named name under the work
// directory and runs `ipfs daemon` on it until it says it is ready.
func (r *runner) startKubo(ctx context.Context, name string) (*kuboDaemon, error) {
	bin := r.s.kubo
	repo := filepath.Join(r.work, name)
	if _, err := runIPFS(ctx, bin, repo, "init", "--profile", "test", "--empty-repo"); err != nil {
		return nil, err
	}
	for _, kv := range kuboConfig {
		if _, err := runIPFS(ctx, bin, repo, "config", "--json", kv[0], kv[1]); err != nil {
			return nil, err
		}
	}
	id, err := runIPFS(ctx, bin, repo, "config", "Identity.PeerID")
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	env := kuboEnv(repo)
	if r.s.maxProcs > 0 {
		env = append(env, fmt.Sprintf("GOMAXPROCS=%d", r.s.maxProcs))
	}
	c, err := startChild(name, r.logs, env, bin, "daemon", "--migrate=false")
	if err != nil {
		return nil, err
	}
	r.kids.add(c)
	d := &kuboDaemon{child: c, bin: bin, repo: repo, id: strings.TrimSpace(id), execAt: t0}
	_, lines, err := c.expect(ctx, "Daemon is ready", 120*time.Second)
	if err != nil {
		return d, err
	}
	d.startup = time.Since(t0)
	for _, l := range lines {
		// "Swarm listening on 127.0.0.1:40123 (TCP)"
		if rest, ok := strings.CutPrefix(l, "Swarm listening on "); ok && strings.Contains(strings.ToLower(rest), "(tcp") {
			d.swarm = strings.Fields(rest)[0]
		}
	}
	if d.swarm == "" {
		return d, fmt.Errorf("%s printed no TCP swarm address (see %s)", name, c.log.Name())
	}
	return d, nil
}

func (d *kuboDaemon) startupTime() time.Duration { return d.startup }

// peerAddr is d's TCP swarm address as a multiaddr with its peer ID (the
// bench's kubo daemons listen on TCP only).
func (d *kuboDaemon) peerAddr(kind string) (string, error) {
	if kind != "/tcp/" {
		return "", fmt.Errorf("%s listens on TCP only, not %s", d.name, kind)
	}
	host, port, _ := strings.Cut(d.swarm, ":")
	return "/ip4/" + host + "/tcp/" + port + "/p2p/" + d.id, nil
}

// streams is the number of streams `ipfs p2p stream ls` lists.
func (d *kuboDaemon) streams(ctx context.Context) (int, error) {
	out, err := d.ipfs(ctx, "p2p", "stream", "ls", "--enc=json")
	if err != nil {
		return 0, err
	}
	var ls struct{ Streams []json.RawMessage }
	if err := json.Unmarshal([]byte(out), &ls); err != nil {
		return 0, fmt.Errorf("%s: reading `ipfs p2p stream ls`: %w", d.name, err)
	}
	return len(ls.Streams), nil
}

// listen makes d serve protocol by dialing the TCP address target.
func (d *kuboDaemon) listen(ctx context.Context, protocol, target string) error {
	host, port, ok := strings.Cut(target, ":")
	if !ok {
		return fmt.Errorf("bad target %q", target)
	}
	_, err := d.ipfs(ctx, "p2p", "listen", protocol, "/ip4/"+host+"/tcp/"+port)
	return err
}

// forward makes d forward a new local port to protocol at the peer address
// to and returns the local HOST:PORT.
func (d *kuboDaemon) forward(ctx context.Context, protocol, to string) (string, error) {
	if _, err := d.ipfs(ctx, "p2p", "forward", protocol, "/ip4/127.0.0.1/tcp/0", to); err != nil {
		return "", err
	}
	out, err := d.ipfs(ctx, "p2p", "ls", "--enc=json")
	if err != nil {
		return "", err
	}
	var ls struct {
		Listeners []struct {
			Protocol      string
			ListenAddress string
			TargetAddress string
		}
	}
	if err := json.Unmarshal([]byte(out), &ls); err != nil {
		return "", fmt.Errorf("%s: reading `ipfs p2p ls`: %w", d.name, err)
	}
	for _, l := range ls.Listeners {
		if l.Protocol != protocol || l.TargetAddress != to && !strings.HasSuffix(to, l.TargetAddress) {
			continue
		}
		// /ip4/127.0.0.1/tcp/PORT
		parts := strings.Split(l.ListenAddress, "/")
		if len(parts) == 5 && parts[3] == "tcp" && parts[4] != "0" {
			return parts[2] + ":" + parts[4], nil
		}
	}
	return "", fmt.Errorf("%s: no forward of %s in `ipfs p2p ls`: %s", d.name, protocol, strings.TrimSpace(out))
}
