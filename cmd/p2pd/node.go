package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/p2pd/p2pd/api"
	"github.com/p2pd/p2pd/client"
	"github.com/p2pd/p2pd/version"
)

var idCmd = &command{
	name:  "id",
	args:  "[--json]",
	short: "show this node's peer ID, addresses and protocols",
	help: `EXAMPLES
  p2pd id
  p2pd id --json | jq -r .id`,
	run: func(ctx context.Context, e *env, c *command, args []string) error {
		fs, cf := clientFlagSet(e, c)
		k, err := parseCall(e, c, fs, cf, args)
		if err != nil {
			return err
		}
		id, err := k.cl.ID(ctx)
		if err != nil {
			return explain(err)
		}
		return k.show(id, func(w io.Writer) {
			fmt.Fprintf(w, "peer id: %s\nagent: %s\naddresses:\n", id.ID, id.AgentVersion)
			for _, a := range id.Addresses {
				fmt.Fprintf(w, "  %s\n", a)
			}
			fmt.Fprintln(w, "protocols:")
			for _, p := range id.Protocols {
				fmt.Fprintf(w, "  %s\n", p)
			}
		})
	},
}

var peersCmd = &command{
	name:  "peers",
	args:  "[--json]",
	short: "list connected peers",
	help: `OUTPUT
  One line per peer: ID ADDRESS DIRECTION LATENCY CONNECTION TRANSPORT, where CONNECTION
  is direct or relayed (the best connection to the peer is shown)

EXAMPLES
  p2pd peers
  p2pd peers --json`,
	run: func(ctx context.Context, e *env, c *command, args []string) error {
		fs, cf := clientFlagSet(e, c)
		k, err := parseCall(e, c, fs, cf, args)
		if err != nil {
			return err
		}
		peers, err := k.cl.Peers(ctx)
		if err != nil {
			return explain(err)
		}
		return k.show(peers, func(w io.Writer) {
			for _, p := range peers {
				fmt.Fprintf(w, "%s %s %s %.1fms %s %s\n", p.ID, p.Address, p.Direction, p.LatencyMS, p.Connection, p.Transport)
			}
		})
	},
}

var connectCmd = &command{
	name:  "connect",
	args:  "[--json] PEER",
	short: "connect to a peer",
	help: `ARGUMENTS
  PEER  the peer's address and ID, e.g. /ip4/192.0.2.7/tcp/4001/p2p/12D3KooW..., or its ID
        alone (12D3KooW... or /p2p/12D3KooW...) to look its addresses up in the DHT

EXAMPLES
  p2pd connect /ip4/127.0.0.1/tcp/4001/p2p/12D3KooW...
  p2pd connect 12D3KooW...`,
	run: func(ctx context.Context, e *env, c *command, args []string) error {
		fs, cf := clientFlagSet(e, c)
		k, err := parseCall(e, c, fs, cf, args, "MULTIADDR/p2p/ID")
		if err != nil {
			return err
		}
		target, err := parsePeer("MULTIADDR", k.pos[0])
		if err != nil {
			return err
		}
		res, err := k.cl.Connect(ctx, target)
		if err != nil {
			return explain(err)
		}
		return k.show(res, func(w io.Writer) { fmt.Fprintf(w, "connected to %s\n", res.ID) })
	},
}

var findCmd = &command{
	name:  "find",
	args:  "[--timeout D] [--json] STRING",
	short: "find peers advertising a rendezvous string",
	help: `ARGUMENTS
  STRING  the rendezvous string peers advertise with ` + "`p2pd daemon --rendezvous STRING`" + `

The search ends as soon as peers are found, or after --timeout (then the list is empty).
With no DHT peers to ask and nothing in this node's own records, it fails with
"no DHT peers yet: ..." (exit 1; with --json the error is also printed as JSON).

OUTPUT
  One line per peer: ID ADDRESS...

EXAMPLES
  p2pd find my-team --timeout 30s
  p2pd find my-team --json`,
	run: func(ctx context.Context, e *env, c *command, args []string) error {
		fs, cf := clientFlagSet(e, c)
		timeout := fs.Duration("timeout", 10*time.Second, "how long to search")
		k, err := parseCall(e, c, fs, cf, args, "STRING")
		if err != nil {
			return err
		}
		if *timeout <= 0 {
			return usagef("invalid --timeout value %s: must be positive", *timeout)
		}
		found, err := k.cl.Find(ctx, k.pos[0], *timeout)
		var ce *client.Error
		if errors.As(err, &ce) && ce.Code == api.CodeUnavailable && k.cf.json {
			// Nothing could be asked (no DHT peers): say so in JSON too.
			_ = printJSONLine(e.stdout, api.Error{Message: ce.Message, Code: ce.Code})
		}
		if err != nil {
			return explain(err)
		}
		return k.show(found, func(w io.Writer) {
			for _, p := range found {
				fmt.Fprintf(w, "%s %s\n", p.ID, strings.Join(p.Addresses, " "))
			}
		})
	},
}

var versionCmd = &command{
	name:  "version",
	args:  "[--json]",
	short: "print the version of p2pd, its commit and its go-libp2p",
	run: func(ctx context.Context, e *env, c *command, args []string) error {
		fs := newFlagSet(e, c)
		asJSON := fs.Bool("json", false, "print JSON")
		pos, err := parseArgs(e, c, fs, args)
		if err != nil {
			return err
		}
		if err := wantArgs(pos); err != nil {
			return err
		}
		in := version.Build()
		if *asJSON {
			return printJSON(e.stdout, struct {
				version.Info
				API string `json:"api"`
			}{in, api.Prefix})
		}
		fmt.Fprintf(e.stdout, "p2pd %s\n", in.Version)
		if in.Commit != "" {
			modified := ""
			if in.Modified {
				modified = " (with uncommitted changes)"
			}
			fmt.Fprintf(e.stdout, "commit:    %s%s\n", in.Commit, modified)
		}
		if in.Libp2p != "" {
			fmt.Fprintf(e.stdout, "go-libp2p: %s\n", in.Libp2p)
		}
		if in.GoVersion != "" {
			fmt.Fprintf(e.stdout, "go:        %s\n", in.GoVersion)
		}
		return nil
	},
}
