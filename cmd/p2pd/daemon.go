package main

import (
	"context"
	"flag"
	"fmt"
	"runtime"
	"strings"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/p2pd/p2pd/api"
	"github.com/p2pd/p2pd/daemon"
	"github.com/p2pd/p2pd/discovery"
	p2phost "github.com/p2pd/p2pd/host"
	"github.com/p2pd/p2pd/listeners"
	"github.com/p2pd/p2pd/repo"
	"github.com/p2pd/p2pd/udpflow"
)

var initCmd = &command{
	name:  "init",
	args:  "[--repo DIR]",
	short: "create the node's repo: identity key, API token and settings",
	help: `The repo is created with mode 0700; identity.key and api.token are 0600. Running init on
an existing repo keeps what is there and adds what is missing.

EXAMPLES
  p2pd init
  p2pd init --repo /var/lib/p2pd`,
	run: func(ctx context.Context, e *env, c *command, args []string) error {
		fs := newFlagSet(e, c)
		repoPath := fs.String("repo", "", "the node's repo `DIR` (default $P2PD_REPO or ~/.p2pd)")
		pos, err := parseArgs(e, c, fs, args)
		if err != nil {
			return err
		}
		if err := wantArgs(pos); err != nil {
			return err
		}
		r, err := openRepo(*repoPath, true)
		if err != nil {
			return err
		}
		id, err := r.PeerID()
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "repo: %s\npeer id: %s\n", r.Path(), id)
		return nil
	},
}

// openRepo resolves the repo path and opens (create: initialises) it.
func openRepo(path string, create bool) (*repo.Repo, error) {
	if path == "" {
		p, err := repo.DefaultPath()
		if err != nil {
			return nil, err
		}
		path = p
	}
	var (
		r   *repo.Repo
		err error
	)
	if create {
		r, err = repo.Init(path)
	} else {
		r, err = repo.Open(path)
	}
	if err != nil {
		return nil, fmt.Errorf("--repo %s: %w", path, err)
	}
	return r, nil
}

// daemonFlags are the flags of `p2pd daemon`; each has a config.json field.
type daemonFlags struct {
	repo        string
	listen      listFlag
	bootstrap   listFlag
	rendezvous  listFlag
	dht         string
	dhtPrefix   string
	deny, allow listFlag
	trusted     listFlag
	api         string
	apiRemote   bool
	mdns        bool
	dialTimeout time.Duration
	maxProcs    int
	udpIdle     time.Duration
	nat         natFlags
	gateway     gatewayFlags
	log         logFlags
}

func (f *daemonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.repo, "repo", "", "the node's repo `DIR` (default $P2PD_REPO or ~/.p2pd)")
	fs.Var(&f.listen, "listen", "libp2p listen `MULTIADDR` (repeatable; default "+listenDefaults()+")")
	fs.Var(&f.bootstrap, "bootstrap", "DHT bootstrap peer `MULTIADDR/p2p/ID` (repeatable; default the public libp2p list; \"none\" for none)")
	fs.Var(&f.rendezvous, "rendezvous", "advertise under `STRING` and connect to peers found there (repeatable)")
	fs.StringVar(&f.dht, "dht", "auto", "DHT `MODE`: auto, server, client or off")
	fs.StringVar(&f.dhtPrefix, "dht-prefix", discovery.DefaultProtocolPrefix, "DHT protocol `PREFIX`; another prefix makes a private DHT")
	fs.Var(&f.deny, "deny", "never dial or accept addresses in `CIDR` (repeatable)")
	fs.Var(&f.allow, "allow", "only dial or accept addresses in `CIDR` (repeatable)")
	fs.Var(&f.trusted, "trusted-network", "exempt peers in `CIDR` from per-IP connection limits (repeatable; for many nodes behind one address)")
	fs.StringVar(&f.api, "api", api.DefaultAPIAddr, "control API `ADDR`: PORT, HOST:PORT or a multiaddr (port 0 picks one; /unix/PATH for a socket)")
	fs.BoolVar(&f.apiRemote, "api-allow-remote", false, "let --api be a non-loopback address (the API token then crosses the network in clear)")
	fs.BoolVar(&f.mdns, "mdns", true, "discover peers on the LAN with mDNS")
	fs.DurationVar(&f.dialTimeout, "dial-timeout", listeners.DefaultDialTimeout, "how long a forward tries to reach its peer")
	fs.DurationVar(&f.udpIdle, "udp-idle-timeout", udpflow.DefaultIdleTimeout, "close a UDP flow after this long without a datagram either way")
	f.nat.register(fs)
	f.gateway.register(fs)
	f.log.register(fs)
	fs.IntVar(&f.maxProcs, "max-procs", 0, "run Go code on at most `N` cores at once (0: Go's default, every core or $GOMAXPROCS)")
}

// merge lays the flags the user set over the repo's config.json.
func (f *daemonFlags) merge(fs *flag.FlagSet, cfg *repo.Config) {
	fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "listen":
			cfg.Listen = f.listen
		case "bootstrap":
			cfg.Bootstrap = f.bootstrap
		case "rendezvous":
			cfg.Rendezvous = f.rendezvous
		case "dht":
			cfg.DHT = f.dht
		case "dht-prefix":
			cfg.DHTPrefix = f.dhtPrefix
		case "deny":
			cfg.Deny = f.deny
		case "allow":
			cfg.Allow = f.allow
		case "trusted-network":
			cfg.TrustedNetworks = f.trusted
		case "api":
			cfg.API = f.api
		case "api-allow-remote":
			cfg.APIAllowRemote = f.apiRemote
		case "mdns":
			cfg.MDNS = f.mdns
		case "dial-timeout":
			cfg.DialTimeout = f.dialTimeout.String()
		case "max-procs":
			cfg.MaxProcs = f.maxProcs
		case "udp-idle-timeout":
			cfg.UDPIdleTimeout = f.udpIdle.String()
		}
	})
	f.nat.merge(fs, cfg)
	f.gateway.merge(fs, cfg)
	f.log.merge(fs, cfg)
}

// options turns settings into daemon options. set reports whether a field
// came from a flag, so errors name the flag, or else config.json.
func daemonOptions(cfg repo.Config, fromFlag func(string) bool, cfgFile string) ([]daemon.Option, error) {
	src := func(name string) string {
		if fromFlag(name) {
			return describe(name, "")
		}
		return describe(name, cfgFile)
	}
	var opts []daemon.Option
	var listen []ma.Multiaddr
	for _, s := range cfg.Listen {
		m, err := parseMultiaddr(src("listen"), s)
		if err != nil {
			return nil, err
		}
		listen = append(listen, m)
	}
	if len(listen) > 0 {
		opts = append(opts, daemon.ListenAddrs(listen...))
	}
	if len(cfg.Bootstrap) > 0 {
		peers, _, err := parseBootstrap(src("bootstrap"), cfg.Bootstrap)
		if err != nil {
			return nil, err
		}
		opts = append(opts, daemon.Bootstrap(peers...)) // none: no peers
	}
	if err := discovery.ValidateMode(cfg.DHT); err != nil {
		return nil, usagef("invalid %s value %q: %v", src("dht"), cfg.DHT, err)
	}
	if err := discovery.ValidatePrefix(cfg.DHTPrefix); err != nil {
		return nil, usagef("invalid %s value %q: %v", src("dht-prefix"), cfg.DHTPrefix, err)
	}
	opts = append(opts, daemon.DHT(cfg.DHT, cfg.DHTPrefix))
	for _, s := range cfg.Rendezvous {
		if s == "" {
			return nil, usagef("invalid %s value: empty string", src("rendezvous"))
		}
	}
	opts = append(opts, daemon.Rendezvous(cfg.Rendezvous...))
	deny, err := parsePrefixes(src("deny"), cfg.Deny)
	if err != nil {
		return nil, err
	}
	allow, err := parsePrefixes(src("allow"), cfg.Allow)
	if err != nil {
		return nil, err
	}
	opts = append(opts, daemon.Filters(deny, allow))
	trusted, err := parsePrefixes(src("trusted-network"), cfg.TrustedNetworks)
	if err != nil {
		return nil, err
	}
	if len(trusted) > 0 {
		opts = append(opts, daemon.TrustedNetworks(trusted...))
	}
	apiAddr, err := parseLocal(src("api"), cfg.API)
	if err != nil {
		return nil, err
	}
	opts = append(opts, daemon.APIAddr(apiAddr), daemon.APIAllowRemote(cfg.APIAllowRemote), daemon.MDNS(cfg.MDNS))
	if cfg.DialTimeout != "" {
		d, err := time.ParseDuration(cfg.DialTimeout)
		if err != nil || d <= 0 {
			return nil, usagef("invalid %s value %q: want a positive duration like 30s", src("dial-timeout"), cfg.DialTimeout)
		}
		opts = append(opts, daemon.DialTimeout(d))
	}
	if cfg.UDPIdleTimeout != "" {
		d, err := time.ParseDuration(cfg.UDPIdleTimeout)
		if err != nil || d <= 0 {
			return nil, usagef("invalid %s value %q: want a positive duration like 2m", src("udp-idle-timeout"), cfg.UDPIdleTimeout)
		}
		opts = append(opts, daemon.UDPIdleTimeout(d))
	}
	if cfg.MaxProcs < 0 {
		return nil, usagef("invalid %s value %d: want a number of cores, or 0 for Go's default", src("max-procs"), cfg.MaxProcs)
	}
	nopts, err := natOptions(cfg, src)
	if err != nil {
		return nil, err
	}
	if err := checkLogSettings(cfg, src); err != nil {
		return nil, err
	}
	gopts, err := gatewayOptions(cfg, src)
	if err != nil {
		return nil, err
	}
	return append(append(opts, nopts...), gopts...), nil
}

var daemonCmd = &command{
	name:  "daemon",
	args:  "[flags]",
	short: "run the p2pd node in the foreground",
	help: `Runs until SIGINT or SIGTERM (a clean shutdown, exit 0). Creates the repo on first use.
Settings come from REPO/config.json; flags given here win. Once ready it prints:
  peer id: 12D3KooW...
  listening on: /ip4/.../tcp/4001/p2p/12D3KooW...   (one line per address)
  gateway: /ip4/127.0.0.1/tcp/8080                  (with --gateway)
  api: /ip4/127.0.0.1/tcp/5055

EXAMPLES
  p2pd daemon
  p2pd daemon --rendezvous my-team --api /ip4/127.0.0.1/tcp/0
  p2pd daemon --listen /ip4/127.0.0.1/tcp/0 --bootstrap none --dht server --dht-prefix /lab
  p2pd daemon --gateway 8080      # then http://localhost:8080/p2p/PEER/x/PROTO/http/`,
	run: func(ctx context.Context, e *env, c *command, args []string) error {
		fs := newFlagSet(e, c)
		var f daemonFlags
		f.register(fs)
		pos, err := parseArgs(e, c, fs, args)
		if err != nil {
			return err
		}
		if err := wantArgs(pos); err != nil {
			return err
		}
		// Check the flags before touching the disk.
		set := map[string]bool{}
		fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
		probe := repo.DefaultConfig()
		f.merge(fs, &probe)
		// config.json may turn the relay service on for the relay flags
		// given here: that check waits for the real settings.
		probe.RelayService = probe.RelayService || !set["relay-service"]
		if _, err := daemonOptions(probe, func(n string) bool { return set[n] }, "config.json"); err != nil {
			return err
		}
		r, err := openRepo(f.repo, true)
		if err != nil {
			return err
		}
		cfg, err := r.Config()
		if err != nil {
			return err
		}
		f.merge(fs, &cfg)
		opts, err := daemonOptions(cfg, func(n string) bool { return set[n] }, r.File(repo.ConfigFile))
		if err != nil {
			return err
		}
		applyLogSettings(cfg)
		opts = append(opts, daemon.Output(e.stdout))
		if cfg.MaxProcs > 0 {
			// Opt-in: by default Go's own choice (every core, or
			// $GOMAXPROCS) stands. One core helped only where the daemon
			// shares two cores with busy programs at both ends of its
			// tunnels, as in the benchmark (BENCHMARKS.md).
			runtime.GOMAXPROCS(cfg.MaxProcs)
		}
		d, err := daemon.New(r, opts...)
		if err != nil {
			return err
		}
		return d.Run(ctx)
	},
}

// listenDefaults names the host's default listen addresses for the help.
func listenDefaults() string {
	var out []string
	for _, a := range p2phost.DefaultListenAddrs() {
		out = append(out, a.String())
	}
	return strings.Join(out, ", ")
}
