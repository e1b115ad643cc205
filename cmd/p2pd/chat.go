package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	logging "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/p2pd/p2pd/chat"
	"github.com/p2pd/p2pd/discovery"
	p2phost "github.com/p2pd/p2pd/host"
	"github.com/p2pd/p2pd/repo"
)

// chatDefaultListen are the addresses a chat node listens on without
// --listen: any free port, TCP and QUIC, IPv4.
var chatDefaultListen = []string{"/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1"}

// chatFlags are the flags of `p2pd chat`.
type chatFlags struct {
	rendezvous string
	bootstrap  listFlag
	dht        string
	dhtPrefix  string
	repo       string
	mdns       bool
	listen     listFlag
	waitPeers  int
	waitFor    time.Duration
	verbose    bool
	nick       string
}

// chatWaitTimeout is how long --wait-peers waits by default.
const chatWaitTimeout = time.Minute

func (f *chatFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.rendezvous, "rendezvous", "", "the room to join: a rendezvous `STRING` shared with the other peers (required)")
	fs.Var(&f.bootstrap, "bootstrap", "DHT bootstrap peer `MULTIADDR/p2p/ID` (repeatable; default the public libp2p list; \"none\" for none)")
	fs.StringVar(&f.dht, "dht", discovery.ModeAuto, "DHT `MODE`: auto, server, client or off (off: LAN peers through mDNS only)")
	fs.StringVar(&f.dhtPrefix, "dht-prefix", discovery.DefaultProtocolPrefix, "DHT protocol `PREFIX`; another prefix makes a private DHT")
	fs.StringVar(&f.repo, "repo", "", "use the identity of the repo in `DIR` (default: a new identity for this chat)")
	fs.BoolVar(&f.mdns, "mdns", true, "find peers on the LAN with mDNS")
	fs.Var(&f.listen, "listen", "libp2p listen `MULTIADDR` (repeatable; default /ip4/0.0.0.0/tcp/0 and /ip4/0.0.0.0/udp/0/quic-v1)")
	fs.IntVar(&f.waitPeers, "wait-peers", 0, "send nothing until `N` peers are in the room (for piped input); fail after --wait-timeout")
	fs.DurationVar(&f.waitFor, "wait-timeout", chatWaitTimeout, "how long --wait-peers waits")
	fs.BoolVar(&f.verbose, "verbose", false, "also print the addresses this chat node listens on")
	fs.StringVar(&f.nick, "nick", "", "the `NAME` the others see beside your short ID (at most 32 bytes)")
}

// chatSetup is what the chat flags describe, checked.
type chatSetup struct {
	listen    []ma.Multiaddr
	bootstrap []peer.AddrInfo
	noBoot    bool
}

// check validates the flags before anything touches the disk or the network.
func (f *chatFlags) check() (chatSetup, error) {
	var s chatSetup
	if f.rendezvous == "" {
		return s, usagef("missing --rendezvous STRING: the room to join")
	}
	if err := chat.ValidateRoom(f.rendezvous); err != nil {
		return s, usagef("--rendezvous: %v", err)
	}
	if err := chat.ValidateNick(f.nick); err != nil {
		return s, usagef("invalid --nick value: %v", err)
	}
	if f.waitPeers < 0 {
		return s, usagef("invalid --wait-peers value %d: want a number of peers, 0 for none", f.waitPeers)
	}
	if f.waitFor <= 0 {
		return s, usagef("invalid --wait-timeout value %s: must be positive", f.waitFor)
	}
	listen := f.listen
	if len(listen) == 0 {
		listen = chatDefaultListen
	}
	for _, a := range listen {
		m, err := parseMultiaddr("--listen", a)
		if err != nil {
			return s, err
		}
		if !hasProto(m, ma.P_TCP) && !hasProto(m, ma.P_QUIC_V1) {
			return s, usagef("invalid --listen value %q: want a TCP (/ip4/ADDR/tcp/PORT) or QUIC (/ip4/ADDR/udp/PORT/quic-v1) address", a)
		}
		s.listen = append(s.listen, m)
	}
	var err error
	if s.bootstrap, s.noBoot, err = parseBootstrap("--bootstrap", f.bootstrap); err != nil {
		return s, err
	}
	if err := discovery.ValidateMode(f.dht); err != nil {
		return s, usagef("invalid --dht value %q: %v", f.dht, err)
	}
	if err := discovery.ValidatePrefix(f.dhtPrefix); err != nil {
		return s, usagef("invalid --dht-prefix value %q: %v", f.dhtPrefix, err)
	}
	return s, nil
}

// hasProto reports whether m has a component of protocol code.
func hasProto(m ma.Multiaddr, code int) bool {
	_, err := m.ValueForProtocol(code)
	return err == nil
}

var chatCmd = &command{
	name:  "chat",
	args:  "--rendezvous STRING [flags]",
	short: "talk to the other terminals in a rendezvous room",
	help: `Runs a node of its own (with --repo, under that repo's identity; no daemon needed) and
joins the room STRING: it advertises itself there in the DHT, keeps looking for the other
peers there for as long as it runs, finds peers on the LAN with mDNS, and talks to each peer
in the room. Two terminals on one LAN need nothing else; across networks they meet through
the DHT (the public one by default, or the one your --bootstrap peers run).

Each line typed goes to every peer in the room (at most 4096 bytes: longer lines are refused
and not sent). Output:
  <short id>: <text>      a line from a peer (the last 6 characters of its peer ID)
  * <short id> joined     a peer entered the room
  * <short id> left       a peer left it
Notices and errors go to stderr. On a terminal there is a prompt with line editing and
colour (set NO_COLOR to turn colour off); with pipes, plain lines only, for scripts.

COMMANDS (typed as a line)
  /peers   list who is in the room
  /quit    leave (so does Ctrl-D, the end of the input, or Ctrl-C)
  /help    list the commands
  //text   send a line that starts with "/"

EXAMPLES
  p2pd chat --rendezvous my-team
  p2pd chat --rendezvous my-team --bootstrap /ip4/192.0.2.7/tcp/4001/p2p/12D3KooW...
  p2pd chat --rendezvous lab --dht-prefix /lab --bootstrap none --dht server
  p2pd init --repo ~/.p2pd-chat && p2pd chat --rendezvous my-team --repo ~/.p2pd-chat   # same ID every time`,
	run: runChat,
}

func runChat(ctx context.Context, e *env, c *command, args []string) error {
	fs := newFlagSet(e, c)
	var f chatFlags
	f.register(fs)
	pos, err := parseArgs(e, c, fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos); err != nil {
		return err
	}
	setup, err := f.check()
	if err != nil {
		return err
	}
	if os.Getenv("GOLOG_LOG_LEVEL") == "" {
		// Warnings would land in the middle of the conversation; the
		// notices chat prints itself say what matters.
		_ = logging.SetLogLevelRegex("p2pd/.*", "error")
	}

	hopts := []p2phost.Option{p2phost.ListenAddrs(setup.listen...)}
	if f.repo != "" {
		sk, lock, err := chatIdentity(f.repo)
		if err != nil {
			return err
		}
		defer lock.Release()
		hopts = append(hopts, p2phost.Identity(sk))
	}
	h, err := p2phost.New(hopts...)
	if err != nil {
		return fmt.Errorf("starting libp2p host: %w", err)
	}
	defer h.Close()

	room, err := chat.New(h, f.rendezvous, chat.Nick(f.nick))
	if err != nil {
		return err
	}
	// The room first: a peer that connects as soon as discovery runs finds
	// the chat protocol already there.
	if err := room.Start(ctx); err != nil {
		return err
	}
	defer room.Close() // on the error paths below; Close is idempotent

	dopts := []discovery.Option{
		discovery.Mode(f.dht),
		discovery.ProtocolPrefix(f.dhtPrefix),
		discovery.MDNS(f.mdns),
	}
	switch {
	case setup.noBoot:
		dopts = append(dopts, discovery.NoBootstrap())
	case len(setup.bootstrap) > 0:
		dopts = append(dopts, discovery.BootstrapPeers(setup.bootstrap...))
	}
	disc, err := discovery.New(h, dopts...)
	if err != nil {
		return err
	}
	if err := disc.Start(ctx); err != nil {
		return fmt.Errorf("starting discovery: %w", err)
	}
	defer disc.Close()
	defer room.Close() // first: peers see a clean leave while the node still runs
	if f.dht != discovery.ModeOff {
		if err := disc.Join(f.rendezvous); err != nil {
			return err
		}
	}

	in, _ := e.stdin.(*os.File)
	out, _ := e.stdout.(*os.File)
	// The prompt and line editing need a terminal at both ends: with
	// stdout in a file, the file would get the prompt and the echo.
	interactive := in != nil && out != nil && chat.IsTerminal(in) && chat.IsTerminal(out)
	color := interactive && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"
	printChatBanner(e, h.ID(), h.Addrs(), f, setup)
	t, err := chat.NewTerminal(room, e.stdin, e.stdout, e.stderr,
		chat.Interactive(interactive), chat.Color(color), chat.WaitPeers(f.waitPeers, f.waitFor))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	if f.dht != discovery.ModeOff && !setup.noBoot {
		wg.Go(func() { warnNoDHTPeers(ctx, disc, t, f.mdns) })
	}
	return t.Run(ctx)
}

// dhtHintAfter is how long chat waits for a first DHT peer before it says
// that none answered.
const dhtHintAfter = 15 * time.Second

// warnNoDHTPeers tells the user, once, when the DHT still has no peer a
// while after the start: the bootstrap peers did not answer, so only mDNS
// can find anyone. (The discovery warnings that say why are hidden unless
// GOLOG_LOG_LEVEL asks for them: they would break up the conversation.)
func warnNoDHTPeers(ctx context.Context, disc *discovery.Service, t *chat.Terminal, mdns bool) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(dhtHintAfter):
	}
	if disc.RoutingTableSize() > 0 {
		return
	}
	msg := "no DHT peer has answered yet: check --bootstrap (GOLOG_LOG_LEVEL=warn shows why the bootstrap peers fail)"
	if mdns {
		msg += "; mDNS keeps looking on the LAN"
	}
	t.Notice(msg)
}

// chatIdentity loads the private key of the repo at path, which must exist,
// and takes the repo's lock for as long as the chat runs: a daemon (or
// another chat) with the same peer ID would confuse their peers.
func chatIdentity(path string) (crypto.PrivKey, *repo.Lock, error) {
	r, err := openRepo(path, false)
	if err != nil {
		return nil, nil, err
	}
	l, err := r.Lock(repo.HolderChat)
	if err != nil {
		if errors.Is(err, repo.ErrLocked) {
			return nil, nil, fmt.Errorf("--repo %s: %w; two nodes with one peer ID confuse their peers: stop it, or chat without --repo", path, err)
		}
		return nil, nil, err
	}
	sk, err := r.Identity()
	if err != nil {
		l.Release()
		return nil, nil, err
	}
	return sk, l, nil
}

// printChatBanner tells the user who they are and how peers can reach
// them, on stderr so stdout stays the conversation.
func printChatBanner(e *env, id peer.ID, addrs []ma.Multiaddr, f chatFlags, s chatSetup) {
	w := e.stderr
	fmt.Fprintf(w, "* you are %s (%s) in room %q\n", chat.ShortID(id), id, f.rendezvous)
	if nick := strings.TrimSpace(f.nick); nick != "" {
		fmt.Fprintf(w, "* the others see you as %s (%s)\n", nick, chat.ShortID(id))
	}
	p2p := ma.StringCast("/p2p/" + id.String())
	for _, a := range addrs {
		if f.verbose {
			fmt.Fprintf(w, "* listening on %s\n", a.Encapsulate(p2p))
		}
	}
	if f.waitPeers > 0 {
		fmt.Fprintf(w, "* waiting for %d peer(s) before sending (at most %s)\n", f.waitPeers, f.waitFor)
	}
	var how string
	switch {
	case f.dht == discovery.ModeOff:
		how = "not using the DHT"
	case s.noBoot:
		how = fmt.Sprintf("DHT %s with no bootstrap peer (others can use one of the addresses above)", f.dhtPrefix)
	case len(s.bootstrap) > 0:
		how = fmt.Sprintf("DHT %s through %d bootstrap peer(s)", f.dhtPrefix, len(s.bootstrap))
	default:
		how = fmt.Sprintf("DHT %s through the public bootstrap peers", f.dhtPrefix)
	}
	if f.mdns {
		how += ", and mDNS on the LAN"
	}
	fmt.Fprintf(w, "* looking for peers: %s\n", how)
}
