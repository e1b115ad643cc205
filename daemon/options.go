package daemon

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/p2pd/p2pd/api"
	"github.com/p2pd/p2pd/discovery"
	"github.com/p2pd/p2pd/listeners"
	"github.com/p2pd/p2pd/udpflow"
)

// Option configures a Daemon.
type Option func(*config) error

type config struct {
	listen          []ma.Multiaddr
	bootstrap       []peer.AddrInfo
	bootstrapSet    bool
	rendezvous      []string
	dhtMode         string
	dhtPrefix       string
	deny, allow     []netip.Prefix
	trusted         []netip.Prefix
	apiAddr         ma.Multiaddr
	mdns            bool
	dialTimeout     time.Duration
	out             io.Writer
	findTimeout     time.Duration
	shutdownTimeout time.Duration
	udpIdleTimeout  time.Duration
	nat             natConfig
	maxAPIConns     int // 0: maxAPIConns
	apiAllowRemote  bool
	retryInterval   time.Duration // failedRetryInterval; tests shorten it
	advertiseEvery  time.Duration // 0: discovery's default; tests lengthen it
	gateway         gatewayConfig
}

func defaultConfig() config {
	return config{
		dhtMode:         "auto",
		dhtPrefix:       discovery.DefaultProtocolPrefix,
		apiAddr:         ma.StringCast(api.DefaultAPIAddr),
		mdns:            true,
		dialTimeout:     listeners.DefaultDialTimeout,
		out:             io.Discard,
		findTimeout:     10 * time.Second,
		shutdownTimeout: 5 * time.Second,
		udpIdleTimeout:  udpflow.DefaultIdleTimeout,
		retryInterval:   failedRetryInterval,
	}
}

// buildConfig applies opts over the defaults and checks the combination.
func buildConfig(opts []Option) (config, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return config{}, err
		}
	}
	if err := checkAPIRemote(&cfg); err != nil {
		return config{}, err
	}
	return cfg, nil
}

// ListenAddrs sets the libp2p listen addresses.
func ListenAddrs(addrs ...ma.Multiaddr) Option {
	return func(c *config) error {
		if len(addrs) == 0 {
			return errors.New("no listen address given")
		}
		c.listen = addrs
		return nil
	}
}

// Bootstrap sets the DHT bootstrap peers. An empty list means none; without
// this option the public libp2p bootstrap list is used.
func Bootstrap(peers ...peer.AddrInfo) Option {
	return func(c *config) error {
		c.bootstrap = peers
		c.bootstrapSet = true
		return nil
	}
}

// Rendezvous makes the node advertise itself under each string and connect
// to the peers it finds there.
func Rendezvous(ns ...string) Option {
	return func(c *config) error {
		for _, s := range ns {
			if s == "" {
				return errors.New("empty rendezvous string")
			}
		}
		c.rendezvous = append(c.rendezvous, ns...)
		return nil
	}
}

// DHT sets the DHT mode (auto, server, client, off) and protocol prefix.
func DHT(mode, prefix string) Option {
	return func(c *config) error {
		c.dhtMode, c.dhtPrefix = mode, prefix
		return nil
	}
}

// Filters sets the address filters.
func Filters(deny, allow []netip.Prefix) Option {
	return func(c *config) error {
		c.deny, c.allow = deny, allow
		return nil
	}
}

// TrustedNetworks exempts these networks from per-IP connection limits.
func TrustedNetworks(prefixes ...netip.Prefix) Option {
	return func(c *config) error {
		c.trusted = prefixes
		return nil
	}
}

// APIAddr sets where the control API listens: /ip4|ip6/HOST/tcp/PORT
// (port 0 picks one) or /unix/PATH.
func APIAddr(addr ma.Multiaddr) Option {
	return func(c *config) error {
		if err := checkAPIAddr(addr); err != nil {
			return err
		}
		c.apiAddr = addr
		return nil
	}
}

// APIAllowRemote lets the control API listen on an address other hosts can
// reach. Its bearer token then crosses the network in clear, so without
// this option New refuses such an address, and with it Start logs a warning.
func APIAllowRemote(allow bool) Option {
	return func(c *config) error {
		c.apiAllowRemote = allow
		return nil
	}
}

// MDNS turns LAN discovery on or off.
func MDNS(on bool) Option {
	return func(c *config) error {
		c.mdns = on
		return nil
	}
}

// DialTimeout bounds a forward's dial of its target peer.
func DialTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("dial timeout must be positive, got %s", d)
		}
		c.dialTimeout = d
		return nil
	}
}

// Output is where the readiness lines (peer id, listening on, api) go.
func Output(w io.Writer) Option {
	return func(c *config) error {
		c.out = w
		return nil
	}
}

// apiAddrIsLocal reports whether only this host can reach addr: a unix
// socket or a loopback IP.
func apiAddrIsLocal(addr ma.Multiaddr) bool {
	if _, err := addr.ValueForProtocol(ma.P_UNIX); err == nil {
		return true
	}
	return manet.IsIPLoopback(addr)
}

// checkAPIRemote refuses a non-local API address unless allowed.
func checkAPIRemote(c *config) error {
	if c.apiAllowRemote || apiAddrIsLocal(c.apiAddr) {
		return nil
	}
	return fmt.Errorf("API address %s is not a loopback address: other hosts could reach the API and its bearer token would cross the network in clear; use 127.0.0.1, ::1 or /unix/PATH, or pass --api-allow-remote to accept the risk", c.apiAddr)
}

func checkAPIAddr(addr ma.Multiaddr) error {
	if len(addr) == 0 {
		return errors.New("empty API address")
	}
	if _, err := addr.ValueForProtocol(ma.P_UNIX); err == nil {
		return nil
	}
	_, errIP4 := addr.ValueForProtocol(ma.P_IP4)
	_, errIP6 := addr.ValueForProtocol(ma.P_IP6)
	_, errTCP := addr.ValueForProtocol(ma.P_TCP)
	if (errIP4 != nil && errIP6 != nil) || errTCP != nil || len(addr) != 2 {
		return fmt.Errorf("API address %s: want /ip4/HOST/tcp/PORT, /ip6/HOST/tcp/PORT or /unix/PATH", addr)
	}
	return nil
}
