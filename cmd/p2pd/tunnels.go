package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/p2pd/p2pd/addr"
	"github.com/p2pd/p2pd/api"
	"github.com/p2pd/p2pd/client"
)

var listenCmd = &command{
	name:  "listen",
	args:  "[flags] PROTOCOL TARGET",
	short: "serve a libp2p protocol by dialling a local TCP or UDP service",
	help: `ARGUMENTS
  PROTOCOL  the libp2p protocol to serve, within /x/ (e.g. /x/ssh) unless --allow-custom-protocol
  TARGET    the local service: PORT (on 127.0.0.1), HOST:PORT, [IPv6]:PORT or a TCP multiaddr
            such as /ip4/127.0.0.1/tcp/22 (port 0 is refused); for a UDP service udp:PORT,
            HOST:PORT/udp or /ip4/127.0.0.1/udp/53

Every inbound stream of PROTOCOL becomes a TCP connection to TARGET. One listen per protocol
(and one more over UDP). A UDP TARGET carries datagrams: each remote client (flow) gets a
UDP socket of its own towards TARGET.

OUTPUT
  PROTOCOL LISTEN TARGET   (LISTEN is /p2p/<this node's id>)

EXAMPLES
  p2pd listen /x/ssh 22
  p2pd listen /x/ssh /ip4/127.0.0.1/tcp/22
  p2pd listen /x/web 127.0.0.1:8080 --allow-peer 12D3KooW... --report-peer-id
  p2pd listen /x/dns udp:53
  p2pd listen /x/wg /ip4/127.0.0.1/udp/51820
  p2pd listen /x/tmp /ip4/127.0.0.1/tcp/9000 --foreground   # removed when this command ends`,
	run: func(ctx context.Context, e *env, c *command, args []string) error {
		fs, cf := clientFlagSet(e, c)
		custom := fs.Bool("allow-custom-protocol", false, "allow a PROTOCOL outside /x/")
		report := fs.Bool("report-peer-id", false, "send the remote peer's ID and a newline to TARGET before the stream's bytes")
		var allow listFlag
		fs.Var(&allow, "allow-peer", "only this peer `ID` may open the service (repeatable)")
		fg := fs.Bool("foreground", false, "keep the listener only while this command runs")
		k, err := parseCall(e, c, fs, cf, args, "PROTOCOL", "TARGET")
		if err != nil {
			return err
		}
		target, err := parseLocal("TARGET", k.pos[1])
		if err != nil {
			return err
		}
		for _, p := range allow {
			if _, err := parsePeerID("--allow-peer", p); err != nil {
				return err
			}
		}
		req := api.ListenRequest{Protocol: k.pos[0], Target: target.String(), AllowCustomProtocol: *custom,
			ReportPeerID: *report, AllowPeers: allow}
		if *fg {
			t, err := k.cl.ListenForeground(ctx, req)
			if err != nil {
				return explainTunnel(err, req.Protocol, "")
			}
			return k.hold(ctx, t)
		}
		l, err := k.cl.Listen(ctx, req)
		if err != nil {
			return explainTunnel(err, req.Protocol, "")
		}
		return k.showListener(l)
	},
}

var forwardCmd = &command{
	name:  "forward",
	args:  "[flags] PROTOCOL LISTEN TARGET",
	short: "open a local TCP or UDP port whose connections (UDP: clients) become streams to a peer",
	help: `ARGUMENTS
  PROTOCOL  the protocol the remote peer serves (its ` + "`p2pd listen`" + `), within /x/ unless --allow-custom-protocol
  LISTEN    where to listen: PORT (on 127.0.0.1), HOST:PORT, [IPv6]:PORT or a TCP multiaddr
            such as /ip4/127.0.0.1/tcp/2222 (port 0 picks a free port; 0.0.0.0:PORT for every
            interface, as a container needs); for UDP udp:PORT, HOST:PORT/udp or
            /ip4/127.0.0.1/udp/5353: each client address becomes a flow of datagrams
  TARGET    the peer: its ID (12D3KooW...), /p2p/<peer id>, or ADDR/p2p/<peer id> to also give
            its address; or @NAME: any peer advertising the rendezvous string NAME (its
            ` + "`p2pd daemon --rendezvous NAME`" + `) that serves PROTOCOL

A peer with no known address is looked up in the DHT. A @NAME target is looked up again as
peers come and go; --pick says how each new connection chooses among them: failover (stay
on one peer while it works, move on when it fails) or round-robin (take turns). A peer that
fails is skipped for a while.

OUTPUT
  PROTOCOL LISTEN TARGET   (LISTEN with the port really bound)

EXAMPLES
  p2pd forward /x/ssh 2222 12D3KooW...
  p2pd forward /x/ssh /ip4/127.0.0.1/tcp/2222 /p2p/12D3KooW...
  p2pd forward /x/web 0 /ip4/192.0.2.7/tcp/4001/p2p/12D3KooW... --json
  p2pd forward /x/dns 127.0.0.1:5353/udp 12D3KooW...
  p2pd forward /x/web 8080 @my-team --pick round-robin`,
	run: func(ctx context.Context, e *env, c *command, args []string) error {
		fs, cf := clientFlagSet(e, c)
		custom := fs.Bool("allow-custom-protocol", false, "allow a PROTOCOL outside /x/")
		fg := fs.Bool("foreground", false, "keep the forward only while this command runs")
		pick := fs.String("pick", "", "how a @NAME target picks the peer for each connection, `MODE`: failover (the default) or round-robin")
		k, err := parseCall(e, c, fs, cf, args, "PROTOCOL", "LISTEN", "TARGET")
		if err != nil {
			return err
		}
		listen, err := parseLocal("LISTEN", k.pos[1])
		if err != nil {
			return err
		}
		target, err := parseTarget("TARGET", k.pos[2])
		if err != nil {
			return err
		}
		if err := checkPick(*pick, target); err != nil {
			return err
		}
		req := api.ForwardRequest{Protocol: k.pos[0], Listen: listen.String(), Target: target,
			Pick: *pick, AllowCustomProtocol: *custom}
		if *fg {
			t, err := k.cl.ForwardForeground(ctx, req)
			if err != nil {
				return explainTunnel(err, req.Protocol, req.Listen)
			}
			return k.hold(ctx, t)
		}
		l, err := k.cl.Forward(ctx, req)
		if err != nil {
			return explainTunnel(err, req.Protocol, req.Listen)
		}
		return k.showListener(l)
	},
}

// hold prints a foreground tunnel and keeps it until a signal (exit 0) or
// until the daemon ends it (an error).
func (k *call) hold(ctx context.Context, t *client.Tunnel) error {
	if err := k.showListener(&t.Listener); err != nil {
		t.Close()
		return err
	}
	select {
	case <-ctx.Done():
		return t.Close()
	case <-t.Done():
		return t.Err()
	}
}

// checkPick checks forward's --pick against its target.
func checkPick(pick, target string) error {
	switch pick {
	case "", api.PickFailover, api.PickRoundRobin:
	default:
		return usagef("invalid --pick value %q: want %s or %s", pick, api.PickFailover, api.PickRoundRobin)
	}
	if _, ok := addr.Rendezvous(target); pick != "" && !ok {
		return usagef("--pick needs a rendezvous TARGET (@NAME): a single peer has nobody to pick from")
	}
	return nil
}

// parseCloseTarget turns close's -t value into the target as ls shows it:
// @NAME and multiaddrs as they are, a bare peer ID as /p2p/ID, a local
// address (a listen's target) as its multiaddr.
func parseCloseTarget(s string) (string, error) {
	if _, ok := addr.Rendezvous(s); ok {
		return s, nil
	}
	if strings.HasPrefix(s, "/") {
		if _, err := parseMultiaddr("-t", s); err != nil {
			return "", err
		}
		return s, nil
	}
	if m, _, err := addr.Peer(s); err == nil {
		return m.String(), nil
	}
	if m, err := addr.Local(s); err == nil {
		return m.String(), nil
	}
	return "", usagef("invalid -t value %q: want a forward's peer (ID, /p2p/ID or @NAME) or a listen's target address (%s)", s, addr.LocalForms)
}

// showCount prints how many things a close ended: "closed 1 listener" on
// a terminal, the bare count when piped (SPEC's contract, which scripts
// parse), or {"closed":N}; what is "listener" or "stream".
func (k *call) showCount(n int, what string) error {
	return k.show(api.CloseResponse{Closed: n}, func(w io.Writer) {
		if isTerminal(w) {
			fmt.Fprintln(w, closedText(n, what))
			return
		}
		fmt.Fprintln(w, n)
	})
}

// showListener prints one listener: PROTOCOL LISTEN TARGET, or JSON.
func (k *call) showListener(l *api.Listener) error {
	return k.show(l, func(w io.Writer) {
		fmt.Fprintf(w, "%s %s %s\n", l.Protocol, l.ListenAddress, l.TargetAddress)
	})
}

var lsCmd = &command{
	name:  "ls",
	args:  "[--retry] [--json]",
	short: "list listeners: forwards first, then listens",
	help: `OUTPUT
  On a terminal, a table: KIND PROTOCOL LISTEN TARGET STATE ALLOWED LAST ERROR (a forward to
  @NAME shows the peer its last connection went to). Piped, one line per listener:
  PROTOCOL LISTEN TARGET, and why an entry's last dial failed, if it did, goes to stderr (it
  is last_error in --json). A saved tunnel that could not be restored
  when the daemon started (its port was taken, say) is listed with state "failed" and the
  reason; the daemon retries it every few seconds, --retry at once; close removes it.

EXAMPLES
  p2pd ls
  p2pd ls --retry
  p2pd ls --json`,
	run: func(ctx context.Context, e *env, c *command, args []string) error {
		fs, cf := clientFlagSet(e, c)
		retry := fs.Bool("retry", false, "retry the tunnels that failed to restore, then list")
		k, err := parseCall(e, c, fs, cf, args)
		if err != nil {
			return err
		}
		list := k.cl.Listeners
		if *retry {
			list = k.cl.RetryListeners
		}
		ls, err := list(ctx)
		if err != nil {
			return explain(err)
		}
		return k.show(ls, func(w io.Writer) {
			writeListeners(w, e.stderr, ls, isTerminal(w), time.Now())
		})
	},
}

var closeCmd = &command{
	name:  "close",
	args:  "-a | [-p PROTOCOL] [-l LISTEN] [-t TARGET]",
	short: "close listeners and forwards",
	help: `Filters AND together; -a closes everything and takes no other filter. Open streams are
not ended (see ` + "`p2pd streams close`" + `). Prints how many were closed: "closed 1 listener" on a terminal, the bare count piped;
when nothing matches, says so on stderr.

EXAMPLES
  p2pd close -p /x/ssh
  p2pd close -l 2222
  p2pd close -t 12D3KooW...
  p2pd close -a`,
	run: func(ctx context.Context, e *env, c *command, args []string) error {
		fs, cf := clientFlagSet(e, c)
		var req api.CloseRequest
		fs.BoolVar(&req.All, "a", false, "close all listeners")
		fs.BoolVar(&req.All, "all", false, "close all listeners")
		fs.StringVar(&req.Protocol, "p", "", "match `PROTOCOL`")
		fs.StringVar(&req.Protocol, "protocol", "", "match `PROTOCOL`")
		fs.StringVar(&req.ListenAddress, "l", "", "match `LISTEN` address")
		fs.StringVar(&req.ListenAddress, "listen-address", "", "match `LISTEN` address")
		fs.StringVar(&req.TargetAddress, "t", "", "match `TARGET` address")
		fs.StringVar(&req.TargetAddress, "target-address", "", "match `TARGET` address")
		k, err := parseCall(e, c, fs, cf, args)
		if err != nil {
			return err
		}
		filters := req.Protocol != "" || req.ListenAddress != "" || req.TargetAddress != ""
		switch {
		case !req.All && !filters:
			return usagef("no matching options given")
		case req.All && filters:
			return usagef("can't combine --all with other matching options")
		}
		if req.ListenAddress != "" {
			m, err := parseLocal("-l", req.ListenAddress)
			if err != nil {
				return err
			}
			req.ListenAddress = m.String()
		}
		if req.TargetAddress != "" {
			if req.TargetAddress, err = parseCloseTarget(req.TargetAddress); err != nil {
				return err
			}
		}
		n, err := k.cl.Close(ctx, req)
		if err != nil {
			return explain(err)
		}
		if n == 0 && !req.All {
			fmt.Fprintf(e.stderr, "p2pd close: no listener matches %s (see `p2pd ls`)\n", describeMatch(req))
		}
		return k.showCount(n, "listener")
	},
}

// describeMatch words close's filters as the user gave them.
func describeMatch(req api.CloseRequest) string {
	var parts []string
	for _, f := range []struct{ flag, v string }{{"-p", req.Protocol}, {"-l", req.ListenAddress}, {"-t", req.TargetAddress}} {
		if f.v != "" {
			parts = append(parts, f.flag+" "+f.v)
		}
	}
	return strings.Join(parts, " ")
}

var streamsCmd = &command{
	name:  "streams",
	args:  "[--json] | close ID | close -a",
	short: "list open bridged streams, or reset them",
	help: `OUTPUT
  On a terminal, a table: ID PROTOCOL ORIGIN TARGET PEER IN OUT AGE. Piped, one line per
  stream: ID PROTOCOL ORIGIN TARGET; a UDP flow adds datagrams in N out N dropped N

  ` + "`p2pd streams close ID`" + ` resets one stream, ` + "`p2pd streams close -a`" + ` all of them: both TCP ends
  see a reset. Prints how many were closed.

EXAMPLES
  p2pd streams
  p2pd streams close 3
  p2pd streams close -a --json`,
	complete: func(args []string) []string {
		if len(args) == 0 {
			return []string{"close"}
		}
		return nil
	},
	run: func(ctx context.Context, e *env, c *command, args []string) error {
		if len(args) > 0 && args[0] == "close" {
			return streamsClose(ctx, e, c, args[1:])
		}
		fs, cf := clientFlagSet(e, c)
		k, err := parseCall(e, c, fs, cf, args)
		if err != nil {
			return err
		}
		ss, err := k.cl.Streams(ctx)
		if err != nil {
			return explain(err)
		}
		return k.show(ss, func(w io.Writer) {
			writeStreams(w, ss, isTerminal(w), time.Now())
		})
	},
}

func streamsClose(ctx context.Context, e *env, c *command, args []string) error {
	fs, cf := clientFlagSet(e, c)
	var all bool
	fs.BoolVar(&all, "a", false, "reset all streams")
	fs.BoolVar(&all, "all", false, "reset all streams")
	pos, err := parseArgs(e, c, fs, args)
	if err != nil {
		return err
	}
	var req api.StreamCloseRequest
	switch {
	case len(pos) == 0 && !all:
		return usagef("no id specified")
	case len(pos) > 0 && all:
		return usagef("give a stream ID or -a, not both")
	case len(pos) > 1:
		return usagef("unexpected argument %q", pos[1])
	case all:
		req.All = true
	default:
		id, err := strconv.ParseUint(pos[0], 10, 64)
		if err != nil {
			return usagef("invalid stream ID %q: want a number from `p2pd streams`", pos[0])
		}
		req.ID = &id
	}
	cl, err := cf.client()
	if err != nil {
		return err
	}
	n, err := cl.CloseStreams(ctx, req)
	if err != nil {
		return explain(err)
	}
	k := &call{e: e, pos: pos, cf: cf, cl: cl}
	return k.showCount(n, "stream")
}
