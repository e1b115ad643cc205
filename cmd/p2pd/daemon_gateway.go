package main

import (
	"flag"
	"time"

	"github.com/p2pd/p2pd/daemon"
	"github.com/p2pd/p2pd/gateway"
	"github.com/p2pd/p2pd/repo"
)

// gatewayFlags are the daemon's HTTP gateway flags.
type gatewayFlags struct {
	addr        string
	allowRemote bool
	timeout     time.Duration
}

func (f *gatewayFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.addr, "gateway", "", "serve the HTTP gateway on `ADDR` (PORT, HOST:PORT or a multiaddr): http://ADDR/p2p/PEER/x/PROTO/http/PATH reaches PEER's web service under /x/PROTO")
	fs.BoolVar(&f.allowRemote, "gateway-allow-remote", false, "let --gateway be a non-loopback address (anyone who reaches it reaches your peers' services)")
	fs.DurationVar(&f.timeout, "gateway-timeout", gateway.DefaultTimeout, "a gateway request waits up to `D` for its peer to be reached and to start answering (then 504)")
}

// merge lays the gateway flags the user set over cfg.
func (f *gatewayFlags) merge(fs *flag.FlagSet, cfg *repo.Config) {
	fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "gateway":
			cfg.Gateway = f.addr
		case "gateway-allow-remote":
			cfg.GatewayAllowRemote = f.allowRemote
		case "gateway-timeout":
			cfg.GatewayTimeout = f.timeout.String()
		}
	})
}

// gatewayOptions turns the gateway settings into daemon options; src names
// where a setting came from, for errors.
func gatewayOptions(cfg repo.Config, src func(string) string) ([]daemon.Option, error) {
	if cfg.Gateway == "" {
		return nil, nil
	}
	addr, err := parseLocal(src("gateway"), cfg.Gateway)
	if err != nil {
		return nil, err
	}
	if err := gateway.CheckAddr(addr, cfg.GatewayAllowRemote); err != nil {
		return nil, usagef("invalid %s value %q: %v", src("gateway"), cfg.Gateway, err)
	}
	opts := []gateway.Option{gateway.AllowRemote(cfg.GatewayAllowRemote)}
	if cfg.GatewayTimeout != "" {
		d, err := time.ParseDuration(cfg.GatewayTimeout)
		if err != nil || d <= 0 {
			return nil, usagef("invalid %s value %q: want a positive duration like 1m", src("gateway-timeout"), cfg.GatewayTimeout)
		}
		opts = append(opts, gateway.Timeout(d))
	}
	return []daemon.Option{daemon.Gateway(addr, opts...)}, nil
}
