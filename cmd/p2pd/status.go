package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/p2pd/p2pd/api"
)

var statusCmd = &command{
	name:  "status",
	args:  "[--json]",
	short: "can others reach this node, and how: reachability, relays, hole punching",
	help: `Shows the node's reachability (public, private or unknown, and whether --reachability pinned
it), its listen and announced addresses, its relay reservations, its DHT, how many peers are
connected directly and through a relay, and a one-line verdict with the next step when others
cannot reach it.

EXAMPLES
  p2pd status
  p2pd status --json | jq .relays`,
	run: func(ctx context.Context, e *env, c *command, args []string) error {
		fs, cf := clientFlagSet(e, c)
		k, err := parseCall(e, c, fs, cf, args)
		if err != nil {
			return err
		}
		st, err := k.cl.Status(ctx)
		if err != nil {
			return explain(err)
		}
		return k.show(st, func(w io.Writer) { printStatus(w, st) })
	},
}

// printStatus prints st for a human.
func printStatus(w io.Writer, st *api.Status) {
	forced := ""
	if st.ReachabilityForced {
		forced = " (pinned by --reachability)"
	}
	fmt.Fprintf(w, "peer id: %s\n", st.ID)
	fmt.Fprintf(w, "reachability: %s%s\n", st.Reachability, forced)
	fmt.Fprintf(w, "verdict: %s\n", st.Verdict)
	list := func(title string, addrs []string) {
		fmt.Fprintf(w, "%s:\n", title)
		if len(addrs) == 0 {
			fmt.Fprintln(w, "  (none)")
		}
		for _, a := range addrs {
			fmt.Fprintf(w, "  %s\n", a)
		}
	}
	list("listening on", st.Addresses)
	list("announced", st.Announced)
	if st.Gateway != "" {
		fmt.Fprintf(w, "gateway: %s\n", st.Gateway)
	}
	fmt.Fprintln(w, "relays:")
	if len(st.Relays) == 0 {
		fmt.Fprintln(w, "  (none configured: add --relay to be reachable from behind a NAT)")
	}
	for _, r := range st.Relays {
		switch {
		case r.Active:
			fmt.Fprintf(w, "  %s reserved, expires in %s\n", r.Peer, time.Until(*r.Expires).Round(time.Second))
			for _, a := range r.Addresses {
				fmt.Fprintf(w, "    %s\n", a)
			}
		case r.Error != "":
			fmt.Fprintf(w, "  %s no reservation: %s\n", r.Peer, r.Error)
		default:
			fmt.Fprintf(w, "  %s no reservation yet\n", r.Peer)
		}
	}
	if rs := st.RelayService; rs != nil {
		fmt.Fprintf(w, "relay service: on, %d reservations, %d circuits per peer, limits %s / %s per connection\n",
			rs.MaxReservations, rs.MaxCircuits, limitText(time.Duration(rs.LimitDuration).String(), rs.LimitDuration == 0),
			limitText(fmt.Sprintf("%d bytes", rs.LimitData), rs.LimitData == 0))
	}
	punch := "enabled, not ready (no public address of this node observed yet)"
	if st.HolePunching.Ready {
		punch = "ready"
	}
	fmt.Fprintf(w, "hole punching: %s\n", punch)
	fmt.Fprintf(w, "dht: %s, %d peers in the routing table", st.DHT.Mode, st.DHT.RoutingTableSize)
	if !st.DHT.Bootstrapped && st.DHT.Mode != "off" {
		fmt.Fprint(w, " (not bootstrapped)")
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "peers: %d direct, %d relayed\n", st.Peers.Direct, st.Peers.Relayed)
}

func limitText(s string, none bool) string {
	if none {
		return "no limit"
	}
	return s
}
