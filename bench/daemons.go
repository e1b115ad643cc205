package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/p2pd/p2pd/api"
	"github.com/p2pd/p2pd/client"
)

// daemon is a running `p2pd daemon` process and a client of its API.
type daemon struct {
	*child
	repo    string
	id      string
	addrs   []string // "listening on:" lines: ADDR/p2p/ID
	cl      client.Client
	execAt  time.Time     // when the process was started
	startup time.Duration // from exec to the API's first answer
}

// benchDaemonFlags are the daemon flags of an isolated node: loopback only,
// no DHT, no mDNS, no bootstrap, and -max-procs as --max-procs.
func (r *runner) benchDaemonFlags(listen ...string) []string {
	args := []string{"--bootstrap", "none", "--dht", "off", "--mdns=false"}
	if r.s.maxProcs > 0 {
		args = append(args, "--max-procs", strconv.Itoa(r.s.maxProcs))
	}
	for _, l := range listen {
		args = append(args, "--listen", l)
	}
	return args
}

const (
	tcpListen  = "/ip4/127.0.0.1/tcp/0"
	quicListen = "/ip4/127.0.0.1/udp/0/quic-v1"
)

// startDaemon initialises a repo named name under the work directory and
// runs `p2pd daemon` on it with flags (the repo and a port-0 API address are
// added). It returns once the API has answered an ID request.
func (r *runner) startDaemon(ctx context.Context, name string, flags ...string) (*daemon, error) {
	return r.startVariant(ctx, variant{bin: r.bin}, name, flags...)
}

// variant is a p2pd binary with extra environment variables.
type variant struct {
	bin string
	env []string
	// noNetAdmin starts the daemon without CAP_NET_ADMIN (when the harness
	// runs as root; a non-root harness has none to drop).
	noNetAdmin bool
}

// startVariant is startDaemon with another binary or environment.
func (r *runner) startVariant(ctx context.Context, v variant, name string, flags ...string) (*daemon, error) {
	repo := filepath.Join(r.work, name)
	if out, err := exec.CommandContext(ctx, v.bin, "init", "--repo", repo).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("p2pd init %s: %w: %s", repo, err, out)
	}
	args := append([]string{"daemon", "--repo", repo, "--api", "/ip4/127.0.0.1/tcp/0"}, flags...)
	bin := v.bin
	if v.noNetAdmin && os.Geteuid() == 0 {
		bin, args = r.self, append([]string{childArg, "nocap", v.bin}, args...)
	}
	t0 := time.Now()
	c, err := startChild(name, r.logs, v.env, bin, args...)
	if err != nil {
		return nil, err
	}
	r.kids.add(c)
	d := &daemon{child: c, repo: repo, execAt: t0}
	if _, lines, err := c.expect(ctx, "api: ", 60*time.Second); err != nil {
		return nil, err
	} else {
		for _, l := range lines {
			if id, ok := strings.CutPrefix(l, "peer id: "); ok {
				d.id = id
			}
			if a, ok := strings.CutPrefix(l, "listening on: "); ok {
				d.addrs = append(d.addrs, a)
			}
		}
	}
	if d.cl, err = client.NewDefaultClient(&client.Config{Repo: repo}); err != nil {
		return nil, err
	}
	id, err := d.cl.ID(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: asking for its ID: %w", name, err)
	}
	d.startup = time.Since(t0)
	if d.id != "" && d.id != id.ID {
		return nil, fmt.Errorf("%s: printed peer id %s but the API says %s", name, d.id, id.ID)
	}
	d.id = id.ID
	return d, nil
}

func (d *daemon) startupTime() time.Duration { return d.startup }

// peerAddr returns the daemon's first listen address (with /p2p/ID) whose
// transport part contains proto ("/tcp/" or "/quic-v1").
func (d *daemon) peerAddr(proto string) (string, error) {
	for _, a := range d.addrs {
		if strings.Contains(a, proto) {
			return a, nil
		}
	}
	return "", fmt.Errorf("%s has no %s address among %v", d.name, proto, d.addrs)
}

// listen makes d serve protocol by dialing the TCP address target.
func (d *daemon) listen(ctx context.Context, protocol, target string) error {
	host, port, ok := strings.Cut(target, ":")
	if !ok {
		return fmt.Errorf("bad target %q", target)
	}
	_, err := d.cl.Listen(ctx, api.ListenRequest{Protocol: protocol, Target: "/ip4/" + host + "/tcp/" + port})
	if err != nil {
		return fmt.Errorf("%s: listen %s: %w", d.name, protocol, err)
	}
	return nil
}

// forward makes d forward a new local port to protocol at the peer address
// to (ADDR/p2p/ID) and returns the local HOST:PORT.
func (d *daemon) forward(ctx context.Context, protocol, to string) (string, error) {
	l, err := d.cl.Forward(ctx, api.ForwardRequest{Protocol: protocol, Listen: "/ip4/127.0.0.1/tcp/0", Target: to})
	if err != nil {
		return "", fmt.Errorf("%s: forward %s: %w", d.name, protocol, err)
	}
	// /ip4/127.0.0.1/tcp/PORT
	parts := strings.Split(l.ListenAddress, "/")
	if len(parts) != 5 {
		return "", fmt.Errorf("%s: unexpected forward address %q", d.name, l.ListenAddress)
	}
	return parts[2] + ":" + parts[4], nil
}

// streams returns the number of bridged streams open in d.
func (d *daemon) streams(ctx context.Context) (int, error) {
	s, err := d.cl.Streams(ctx)
	return len(s), err
}

// profile fetches a CPU profile of `seconds` from the daemon's API into file.
func (d *daemon) profile(ctx context.Context, seconds int, file string) error {
	return d.pprof(ctx, fmt.Sprintf("profile?seconds=%d", seconds), file)
}

// metrics reads the daemon's Prometheus metrics and returns the values of
// the unlabelled series among names.
func (d *daemon) metrics(ctx context.Context, names ...string) (map[string]float64, error) {
	rt, err := client.NewTransport(&client.Config{Repo: d.repo})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://localhost"+api.RouteMetrics, nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: fetching metrics: %w", d.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: fetching metrics: %s", d.name, resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, l := range strings.Split(string(b), "\n") {
		name, val, ok := strings.Cut(l, " ")
		if !ok || !slices.Contains(names, name) {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
			out[name] = v
		}
	}
	return out, nil
}

// pprof fetches the pprof resource what (e.g. "heap") into file.
func (d *daemon) pprof(ctx context.Context, what, file string) error {
	rt, err := client.NewTransport(&client.Config{Repo: d.repo})
	if err != nil {
		return err
	}
	hc := &http.Client{Transport: rt}
	url := fmt.Sprintf("http://localhost%s/%s", api.RouteDebugPprof, what)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s: fetching %s: %w", d.name, what, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s: fetching %s: %s: %s", d.name, what, resp.Status, b)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
