// Package daemon wires a p2pd node together: the libp2p host with its
// address filters, DHT discovery, the listener and stream registries, the
// event dispatcher and the control API server. It owns their lifecycle:
// Start brings them up in order, Close takes them down in reverse (API,
// tunnels, streams, DHT, host) and removes REPO/api.
//
// It does not parse flags or handle signals; cmd/p2pd does.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"

	logging "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/p2pd/p2pd/api"
	"github.com/p2pd/p2pd/discovery"
	"github.com/p2pd/p2pd/events"
	"github.com/p2pd/p2pd/filters"
	"github.com/p2pd/p2pd/gateway"
	p2phost "github.com/p2pd/p2pd/host"
	"github.com/p2pd/p2pd/listeners"
	"github.com/p2pd/p2pd/repo"
	"github.com/p2pd/p2pd/streams"
)

var log = logging.Logger("p2pd/daemon")

// Daemon is one running p2pd node.
type Daemon struct {
	cfg  config
	repo *repo.Repo

	// Set by Start, read-only afterwards.
	host      host.Host
	disc      *discovery.Service
	streams   *streams.Registry
	listeners *listeners.Registry
	gateway   *gateway.Gateway // nil without --gateway
	events    *events.Dispatcher
	metrics   *prometheus.Registry
	apiLn     net.Listener
	apiAddr   string
	apiConns  *apiConns   // the API listener as served: caps connections
	apiSock   os.FileInfo // the unix API socket as created, to remove only it
	server    *http.Server
	token     *tokenWatch

	ctx    context.Context // cancelled by Close; bounds long API requests
	cancel context.CancelFunc
	wg     sync.WaitGroup // the API server goroutine and the connection watcher

	tunnels tunnelStore
	nat     natState
	// lock is the repo's lock, held from Start to the end of Close.
	lock *repo.Lock

	closeOnce sync.Once
	closeErr  error
}

// New prepares a daemon for the repo r. It does no I/O.
func New(r *repo.Repo, opts ...Option) (*Daemon, error) {
	if r == nil {
		return nil, errors.New("daemon needs a repo")
	}
	cfg, err := buildConfig(opts)
	if err != nil {
		return nil, err
	}
	return &Daemon{cfg: cfg, repo: r}, nil
}

// Host is the daemon's libp2p host (nil before Start).
func (d *Daemon) Host() host.Host { return d.host }

// APIAddr is the control API's real multiaddr (after Start).
func (d *Daemon) APIAddr() string { return d.apiAddr }

// Start brings the node up and returns once the API answers. On error,
// everything started so far is stopped again.
func (d *Daemon) Start(ctx context.Context) (err error) {
	d.ctx, d.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	// One daemon per repo: a second one would take over REPO/api and lose
	// the tunnels of the first when it saves.
	if d.lock, err = d.repo.Lock(repo.HolderDaemon); err != nil {
		return err
	}
	if removed, err := d.repo.RemoveTempFiles(); err != nil {
		log.Warnw("removing temporary files left by an interrupted write", "err", err)
	} else if len(removed) > 0 {
		log.Infow("removed temporary files left by an interrupted write", "files", removed)
	}
	sk, err := d.repo.Identity()
	if err != nil {
		return err
	}
	if d.token, err = newTokenWatch(d.repo); err != nil {
		return err
	}
	flt, err := filters.New(filters.Deny(d.cfg.deny...), filters.Allow(d.cfg.allow...))
	if err != nil {
		return fmt.Errorf("address filters: %w", err)
	}
	d.metrics = prometheus.NewRegistry()
	d.metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	d.events = events.NewDispatcher()

	// Bind the API first: a taken API port should fail fast, before any
	// network activity.
	if err := d.listenAPI(); err != nil {
		return err
	}
	if err := d.lock.SetAPI(d.apiAddr); err != nil {
		log.Warnw("recording the API address in the repo lock", "err", err)
	}

	listen := d.cfg.listen
	if len(listen) == 0 {
		listen = p2phost.DefaultListenAddrs()
	}
	if err := checkPortsFree(listen); err != nil {
		return err
	}
	hopts := []p2phost.Option{
		p2phost.Identity(sk),
		p2phost.ConnectionGater(flt),
		p2phost.PrometheusRegisterer(d.metrics),
	}
	// Without --listen the host's defaults apply, which tolerate a missing
	// address family (no IPv6); addresses the user names must all work.
	if len(d.cfg.listen) > 0 {
		hopts = append(hopts, p2phost.ListenAddrs(d.cfg.listen...))
	}
	if len(d.cfg.trusted) > 0 {
		hopts = append(hopts, p2phost.TrustedNetworks(d.cfg.trusted...))
	}
	hopts = append(hopts, d.natHostOptions()...)
	fast, err := fastPath()
	if err != nil {
		return err
	}
	if !fast {
		log.Warnw("fast path off: plain bridge and go-libp2p's TLS", "env", FastPathEnv)
	}
	hopts = append(hopts, fastPathHostOptions(fast)...)
	if d.host, err = p2phost.New(hopts...); err != nil {
		return fmt.Errorf("starting libp2p host: %w", err)
	}
	d.watchConnections()
	if err := d.startRelayService(); err != nil {
		return err
	}

	dopts := []discovery.Option{
		discovery.Mode(d.cfg.dhtMode),
		discovery.ProtocolPrefix(d.cfg.dhtPrefix),
		discovery.MDNS(d.cfg.mdns),
		discovery.OnPeerFound(d.peerFound),
	}
	if !flt.Empty() {
		dopts = append(dopts, discovery.AddrFilter(flt.FilterAddrs))
	}
	if d.cfg.advertiseEvery > 0 {
		dopts = append(dopts, discovery.AdvertiseInterval(d.cfg.advertiseEvery))
	}
	if d.cfg.bootstrapSet {
		if len(d.cfg.bootstrap) == 0 {
			dopts = append(dopts, discovery.NoBootstrap())
		} else {
			dopts = append(dopts, discovery.BootstrapPeers(d.cfg.bootstrap...))
		}
	}
	if d.disc, err = discovery.New(d.host, dopts...); err != nil {
		return err
	}
	if err := d.disc.Start(d.ctx); err != nil {
		return fmt.Errorf("starting discovery: %w", err)
	}
	if err := d.startNAT(); err != nil {
		return err
	}

	if d.streams, err = newStreamRegistry(fast, d.host.ConnManager(), d.metrics,
		streams.WithOnOpen(d.streamOpened),
		streams.WithOnClose(d.streamClosed),
	); err != nil {
		return err
	}
	lopts := []listeners.Option{
		listeners.WithPeerFinder(d.disc),
		listeners.WithDialTimeout(d.cfg.dialTimeout),
		listeners.WithDirectPaths(d.nat.punches),
		listeners.WithUDPIdleTimeout(d.cfg.udpIdleTimeout),
		listeners.WithOnChange(d.tunnelsChanged),
		listeners.WithOnAdd(d.listenerAdded),
		listeners.WithOnRemove(d.listenerRemoved),
	}
	if d.cfg.dhtMode != discovery.ModeOff {
		lopts = append(lopts, listeners.WithRendezvousFinder(d.disc)) // forwards to @NAME
	}
	d.listeners = listeners.NewRegistry(d.host, d.streams, lopts...)
	d.tunnels.repo = d.repo
	d.tunnels.persist = newPersister(d.writeTunnels)
	// Restore before the writer starts: a crash half-way must never leave a
	// shortened tunnels.json.
	d.restoreTunnels(ctx)
	d.tunnels.persist.start()
	if err := d.saveTunnels(); err != nil {
		log.Errorw("saving tunnels after restoring them", "err", err)
	}
	d.retryLoop()
	if err := d.startGateway(ctx); err != nil {
		return err
	}

	for _, ns := range d.cfg.rendezvous {
		if err := d.disc.Join(ns); err != nil {
			return fmt.Errorf("joining rendezvous %q: %w", ns, err)
		}
	}

	d.serveAPI()
	if err := d.repo.WriteAPIAddr(d.apiAddr); err != nil {
		return err
	}
	d.printReady()
	return nil
}

// printReady prints the lines scripts parse once the node is ready.
func (d *Daemon) printReady() {
	w := d.cfg.out
	fmt.Fprintf(w, "peer id: %s\n", d.host.ID())
	p2p := ma.StringCast("/p2p/" + d.host.ID().String())
	for _, a := range d.host.Addrs() {
		fmt.Fprintf(w, "listening on: %s\n", a.Encapsulate(p2p))
	}
	d.printGateway()
	fmt.Fprintf(w, "api: %s\n", d.apiAddr)
	if f, ok := w.(*os.File); ok {
		f.Sync()
	}
}

// Run starts the daemon, serves until ctx is cancelled, then stops it.
// Cancellation is a clean shutdown and returns nil.
func (d *Daemon) Run(ctx context.Context) error {
	if err := d.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	log.Infow("shutting down")
	return d.Close()
}

// Close stops everything in reverse order of Start and removes REPO/api.
// It is safe to call more than once.
func (d *Daemon) Close() error {
	d.closeOnce.Do(func() { d.closeErr = d.close() })
	return d.closeErr
}

func (d *Daemon) close() error {
	var errs []error
	if d.cancel != nil {
		d.cancel() // ends event streams and foreground requests
	}
	if d.server != nil {
		sctx, cancel := context.WithTimeout(context.Background(), d.cfg.shutdownTimeout)
		if err := d.server.Shutdown(sctx); err != nil {
			d.server.Close()
		}
		cancel()
	} else if d.apiLn != nil {
		d.apiLn.Close()
	}
	d.wg.Wait()
	if d.apiAddr != "" {
		if err := d.repo.RemoveAPIAddr(d.apiAddr); err != nil {
			errs = append(errs, err)
		}
		if path, err := ma.StringCast(d.apiAddr).ValueForProtocol(ma.P_UNIX); err == nil {
			removeOwnSocket(path, d.apiSock)
		}
	}
	if d.tunnels.persist != nil {
		d.tunnels.persist.stop() // after writing what the last changes asked for
	}
	d.stopGateway()
	if d.listeners != nil {
		d.tunnels.freeze() // shutdown removes entries; keep tunnels.json as it was
		if err := d.listeners.Shutdown(); err != nil {
			errs = append(errs, err)
		}
	}
	if d.streams != nil {
		if err := d.streams.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if d.disc != nil {
		if err := d.disc.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := d.stopNAT(); err != nil {
		errs = append(errs, err)
	}
	if d.host != nil {
		if err := d.host.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if d.events != nil {
		d.events.Close()
	}
	if err := d.lock.Release(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// listenAPI binds the control API's socket.
func (d *Daemon) listenAPI() error {
	addr := d.cfg.apiAddr
	if path, err := addr.ValueForProtocol(ma.P_UNIX); err == nil {
		ln, err := listenUnix(path)
		if err != nil {
			return err
		}
		if d.apiSock, err = os.Lstat(path); err != nil {
			ln.Close()
			return fmt.Errorf("listening for the API on /unix%s: %w", path, err)
		}
		d.apiLn = ln
		d.apiAddr = addr.String()
		return nil
	}
	ln, err := manet.Listen(addr)
	if err != nil {
		return fmt.Errorf("listening for the API on %s: %w (is another daemon running? pick another with --api, port 0 for any)", addr, err)
	}
	if !apiAddrIsLocal(addr) {
		log.Warnw("the control API listens on a non-loopback address (--api-allow-remote): other hosts can reach it and its bearer token crosses the network in clear; put it behind a TLS tunnel or firewall", "api", ln.Multiaddr())
	}
	d.apiLn = manet.NetListener(ln)
	d.apiAddr = ln.Multiaddr().String()
	return nil
}

// listenUnix listens on a unix socket with mode 0600. A file already at
// path is replaced only when it is a stale socket (nothing answers on it);
// anything else is refused, never deleted.
func listenUnix(path string) (*net.UnixListener, error) {
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	lc := net.ListenConfig{Control: ownerOnly}
	ln, err := lc.Listen(context.Background(), "unix", path)
	if err != nil {
		return nil, fmt.Errorf("listening for the API on /unix%s: %w", path, err)
	}
	ul := ln.(*net.UnixListener)
	// Close must not unlink whatever is at path by then: unixSocketGone
	// removes the socket only if it is still ours.
	ul.SetUnlinkOnClose(false)
	if err := os.Chmod(path, 0o600); err != nil {
		ul.Close()
		os.Remove(path)
		return nil, fmt.Errorf("securing API socket %s: %w", path, err)
	}
	return ul, nil
}

// removeStaleSocket removes path if it is a unix socket nobody answers on.
// A missing path is fine; a live socket, a file of another kind or one that
// cannot be probed is an error naming the path.
func removeStaleSocket(path string) error {
	st, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("listening for the API on /unix%s: %w", path, err)
	}
	if st.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("listening for the API on /unix%s: the path exists and is not a socket (%s): refusing to replace it; remove it yourself or pick another path", path, fileKind(st.Mode()))
	}
	c, err := net.DialTimeout("unix", path, 200*time.Millisecond)
	if err == nil {
		c.Close()
		return fmt.Errorf("listening for the API on /unix%s: a daemon already answers there", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("listening for the API on /unix%s: cannot tell whether the socket there is stale: %w", path, err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("removing stale API socket %s: %w", path, err)
	}
	log.Infow("removed a stale API socket", "path", path)
	return nil
}

// fileKind names a file mode's type for error messages.
func fileKind(m os.FileMode) string {
	switch {
	case m.IsRegular():
		return "a regular file"
	case m.IsDir():
		return "a directory"
	case m&os.ModeSymlink != 0:
		return "a symbolic link"
	case m&os.ModeNamedPipe != 0:
		return "a named pipe"
	}
	return "mode " + m.String()
}

// removeOwnSocket removes the API socket at shutdown if the file at path is
// still the one this daemon created.
func removeOwnSocket(path string, own os.FileInfo) {
	st, err := os.Lstat(path)
	if err != nil || own == nil || !os.SameFile(st, own) {
		return
	}
	if err := os.Remove(path); err != nil {
		log.Warnw("removing the API socket", "path", path, "err", err)
	}
}

// watchConnections publishes peer connected/disconnected events. It follows
// the host's EvtPeerConnectednessChanged, which the swarm emits once per
// transition, so a peer with several connections (or two racing dials) gives
// exactly one event each way. The goroutine is owned by d.wg and stops with
// d.ctx.
func (d *Daemon) watchConnections() {
	sub, err := d.host.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged),
		eventbus.BufSize(256), eventbus.Name("p2pd-daemon-events"))
	if err != nil {
		// Only a programming error gets here; the node works without the events.
		log.Errorw("subscribing to connection events; peer events are off", "err", err)
		return
	}
	connected := map[peer.ID]bool{}
	d.consume(sub, func(e any) {
		if ev, ok := e.(event.EvtPeerConnectednessChanged); ok {
			d.connectednessChanged(ev, connected)
		}
	})
}

// consume hands every event of sub to handle, in one goroutine owned by
// d.wg that stops with d.ctx and closes sub.
func (d *Daemon) consume(sub event.Subscription, handle func(any)) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer sub.Close()
		for {
			select {
			case <-d.ctx.Done():
				return
			case e, ok := <-sub.Out():
				if !ok {
					return
				}
				handle(e)
			}
		}
	}()
}

// connectednessChanged turns one connectedness change into an event;
// connected is the watcher's own record of who is connected (a limited,
// relayed connection counts).
func (d *Daemon) connectednessChanged(ev event.EvtPeerConnectednessChanged, connected map[peer.ID]bool) {
	p := ev.Peer
	switch ev.Connectedness {
	case network.Connected, network.Limited:
		if connected[p] {
			return
		}
		connected[p] = true
		addrs := []string{}
		for _, c := range d.host.Network().ConnsToPeer(p) {
			addrs = append(addrs, c.RemoteMultiaddr().String())
		}
		d.events.Publish(api.Event{Type: api.EventPeerConnected, Peer: p.String(), Addresses: addrs})
	case network.NotConnected:
		if !connected[p] {
			return
		}
		delete(connected, p)
		d.events.Publish(api.Event{Type: api.EventPeerDisconnected, Peer: p.String()})
	}
}

func (d *Daemon) peerFound(source string, ai peer.AddrInfo) {
	addrs := make([]string, 0, len(ai.Addrs))
	for _, a := range ai.Addrs {
		addrs = append(addrs, a.String())
	}
	d.events.Publish(api.Event{Type: api.EventPeerDiscovered, Peer: ai.ID.String(), Rendezvous: source, Addresses: addrs})
}

// streamOpened and streamClosed run on every tunnelled connection: with no
// subscriber they build nothing (encoding peer IDs and addresses showed in
// connect-rate profiles).
func (d *Daemon) streamOpened(info streams.Info) {
	if d.events.Subscribers() == 0 {
		return
	}
	s := streamJSON(info)
	d.events.Publish(api.Event{Type: api.EventStreamOpened, Peer: s.Peer, Stream: &s})
}

func (d *Daemon) streamClosed(info streams.Info, err error) {
	if d.events.Subscribers() == 0 {
		return
	}
	s := streamJSON(info)
	ev := api.Event{Type: api.EventStreamClosed, Peer: s.Peer, Stream: &s}
	if err != nil {
		ev.Error = err.Error()
	}
	d.events.Publish(ev)
}

func (d *Daemon) listenerAdded(info listeners.Info) {
	d.tunnels.supersede(info)
	l := listenerJSON(info)
	d.events.Publish(api.Event{Type: api.EventListenerAdded, Listener: &l})
}

func (d *Daemon) listenerRemoved(info listeners.Info) {
	l := listenerJSON(info)
	d.events.Publish(api.Event{Type: api.EventListenerRemoved, Listener: &l})
}
