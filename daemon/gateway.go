package daemon

import (
	"context"
	"fmt"
	"slices"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/p2pd/p2pd/discovery"
	"github.com/p2pd/p2pd/gateway"
)

// gatewayConfig is the HTTP gateway's part of the daemon's settings.
type gatewayConfig struct {
	addr ma.Multiaddr // nil: no gateway
	opts []gateway.Option
}

// Gateway makes the daemon serve the HTTP gateway (package gateway) on
// addr, a loopback TCP address unless opts hold gateway.AllowRemote(true).
func Gateway(addr ma.Multiaddr, opts ...gateway.Option) Option {
	return func(c *config) error {
		c.gateway = gatewayConfig{addr: addr, opts: opts}
		return nil
	}
}

// startGateway starts the HTTP gateway, if there is one, on the listener
// and stream registries.
func (d *Daemon) startGateway(ctx context.Context) error {
	gc := d.cfg.gateway
	if gc.addr == nil {
		return nil
	}
	opts := gc.opts
	if d.cfg.dhtMode != discovery.ModeOff {
		opts = append(slices.Clip(opts), gateway.WithRendezvousFinder(d.disc)) // URLs naming @NAME
	}
	g, err := gateway.New(gc.addr, d.listeners, d.streams, opts...)
	if err != nil {
		return err
	}
	if err := g.Start(ctx); err != nil {
		return err
	}
	d.gateway = g
	if !manet.IsIPLoopback(g.Addr()) {
		log.Warnw("the HTTP gateway listens on a non-loopback address (--gateway-allow-remote): anyone who reaches it can reach this node's peers' services through it", "gateway", g.Addr())
	}
	return nil
}

// printGateway prints the gateway's readiness line, if there is one.
func (d *Daemon) printGateway() {
	if d.gateway != nil {
		fmt.Fprintf(d.cfg.out, "gateway: %s\n", d.gateway.Addr())
	}
}

// gatewayAddr is the gateway's address, or "" without one.
func (d *Daemon) gatewayAddr() string {
	if d.gateway == nil {
		return ""
	}
	return d.gateway.Addr().String()
}

// stopGateway closes the gateway, if there is one: its requests end, their
// streams follow.
func (d *Daemon) stopGateway() {
	if d.gateway != nil {
		d.gateway.Close()
	}
}
