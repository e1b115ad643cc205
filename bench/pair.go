package main

import (
	"context"
	"time"
)

// tunnelDaemon is one daemon of a forward, p2pd's (*daemon) or kubo's
// (*kuboDaemon): what the harness does with either.
type tunnelDaemon interface {
	// proc is the daemon's process.
	proc() *child
	// startupTime is the time from exec to the daemon being ready.
	startupTime() time.Duration
	// listen makes the daemon serve protocol by dialing the TCP address
	// target (HOST:PORT).
	listen(ctx context.Context, protocol, target string) error
	// forward makes the daemon forward a new local port to protocol at the
	// peer address to and returns the local HOST:PORT.
	forward(ctx context.Context, protocol, to string) (string, error)
	// peerAddr is the address (with /p2p/ID) another daemon forwards to
	// over the transport kind ("/tcp/" or "/quic-v1").
	peerAddr(kind string) (string, error)
	// streams is the number of forwarded streams the daemon has open.
	streams(ctx context.Context) (int, error)
}

// startFunc starts one daemon named name.
type startFunc func(ctx context.Context, name string) (tunnelDaemon, error)

// p2pdStarter starts p2pd daemons of variant v listening on listen.
func (r *runner) p2pdStarter(v variant, listen string) startFunc {
	return func(ctx context.Context, name string) (tunnelDaemon, error) {
		d, err := r.startVariant(ctx, v, name, r.benchDaemonFlags(listen)...)
		if d == nil {
			return nil, err
		}
		return d, err
	}
}

// kuboStarter starts kubo daemons.
func (r *runner) kuboStarter() startFunc {
	return func(ctx context.Context, name string) (tunnelDaemon, error) {
		d, err := r.startKubo(ctx, name)
		if d == nil {
			return nil, err
		}
		return d, err
	}
}

// pair is the two daemons of a forward: a forwards, b listens.
type pair struct{ a, b tunnelDaemon }

func (p pair) pids() []int { return []int{p.a.proc().pid(), p.b.proc().pid()} }

// startPair starts the daemons prefix-a and prefix-b and adds their
// processes to ps.
func startPair(ctx context.Context, ps *pathSet, prefix string, start startFunc) (pair, error) {
	var ds [2]tunnelDaemon
	for i, role := range []string{"a", "b"} {
		d, err := start(ctx, prefix+"-"+role)
		if d != nil {
			ps.procs = append(ps.procs, d.proc())
		}
		if err != nil {
			return pair{}, err
		}
		ds[i] = d
	}
	return pair{ds[0], ds[1]}, nil
}

// connect makes b serve each protocol by dialing its target and a forward
// a local port to it over transport kind; it returns the local addresses.
func (p pair) connect(ctx context.Context, kind string, protoTargets ...[2]string) ([]string, error) {
	for _, pt := range protoTargets {
		if err := p.b.listen(ctx, pt[0], pt[1]); err != nil {
			return nil, err
		}
	}
	to, err := p.b.peerAddr(kind)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, pt := range protoTargets {
		local, err := p.a.forward(ctx, pt[0], to)
		if err != nil {
			return nil, err
		}
		out = append(out, local)
	}
	return out, nil
}

// pairPath starts a pair of daemons with start, the second serving the sink
// and echo protocols, the first forwarding a local port to each over
// transport kind.
func (r *runner) pairPath(ctx context.Context, ps *pathSet, name, prefix string, start startFunc, kind, sink, echo string) (path, error) {
	p := path{name: name}
	pr, err := startPair(ctx, ps, prefix, start)
	if err != nil {
		return p, err
	}
	locals, err := pr.connect(ctx, kind, [2]string{protoSink, sink}, [2]string{protoEcho, echo})
	if err != nil {
		return p, err
	}
	p.sink, p.echo, p.pids, p.ends = locals[0], locals[1], pr.pids(), pr
	return p, nil
}

// profiler is a daemon that serves pprof profiles (p2pd's).
type profiler interface {
	pprof(ctx context.Context, what, file string) error
}

// runtimeReader is a daemon whose Go runtime metrics the harness reads
// (p2pd's).
type runtimeReader interface {
	metrics(ctx context.Context, names ...string) (map[string]float64, error)
}
