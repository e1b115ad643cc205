package main

import (
	"context"
	"fmt"
)

// pathSet is the tunnel processes of one repetition.
type pathSet struct {
	paths []path   // p2pd over TCP first
	a, b  *daemon  // the p2pd forward over TCP: forwarding and listening daemon
	procs []*child // every process of the set
}

// stop stops every process of the set.
func (ps *pathSet) stop() {
	if ps == nil {
		return
	}
	for _, c := range ps.procs {
		c.stop()
	}
}

// setupPaths starts the processes of every path for repetition rep and
// warms the paths up. Each path has processes of its own, so that the CPU
// time of a path's processes is that path's alone.
func (r *runner) setupPaths(ctx context.Context, rep int, sink, echo, certFile, keyFile string) (ps *pathSet, err error) {
	ps = &pathSet{}
	defer func() {
		if err != nil {
			ps.stop()
		}
	}()

	// The -compare variant's daemons start first on odd repetitions: which
	// pair started first (and so where the kernel placed it) measured a few
	// per cent on its own with the same binary on both paths.
	var cmp path
	startCompare := func() error {
		if r.s.compare.bin == "" {
			return nil
		}
		var err error
		cmp, err = r.forwardPath(ctx, ps, r.s.compare, pathCompare, fmt.Sprintf("cmp%d", rep), tcpListen, "/tcp/", sink, echo)
		return err
	}
	if rep%2 == 1 {
		if err := startCompare(); err != nil {
			return ps, err
		}
	}
	p2pd, err := r.forwardPath(ctx, ps, variant{bin: r.bin}, pathP2PD, fmt.Sprintf("fwd%d", rep), tcpListen, "/tcp/", sink, echo)
	if err != nil {
		return ps, err
	}
	if rep%2 == 0 {
		if err := startCompare(); err != nil {
			return ps, err
		}
	}
	quic, err := r.forwardPath(ctx, ps, variant{bin: r.bin}, pathP2PDQUIC, fmt.Sprintf("quic%d", rep), quicListen, "/quic-v1", sink, echo)
	if err != nil {
		return ps, err
	}

	exit, exitAddrs, err := r.startHelper(ctx, fmt.Sprintf("ref%d-exit", rep), "reftunnel", "-role", "exit",
		"-cert", certFile, "-key", keyFile, "-map", "127.0.0.1:0="+sink, "-map", "127.0.0.1:0="+echo)
	if exit != nil {
		ps.procs = append(ps.procs, exit)
	}
	if err != nil {
		return ps, err
	}
	entry, entryAddrs, err := r.startHelper(ctx, fmt.Sprintf("ref%d-entry", rep), "reftunnel", "-role", "entry",
		"-cert", certFile, "-map", "127.0.0.1:0="+exitAddrs[0], "-map", "127.0.0.1:0="+exitAddrs[1])
	if entry != nil {
		ps.procs = append(ps.procs, entry)
	}
	if err != nil {
		return ps, err
	}
	ref := path{name: pathRef, sink: entryAddrs[0], echo: entryAddrs[1], pids: []int{entry.pid(), exit.pid()}}
	direct := path{name: pathDirect, sink: sink, echo: echo}
	ps.paths = []path{p2pd, direct, ref, quic}

	if r.s.compare.bin != "" {
		ps.paths = append(ps.paths, cmp)
	}

	// Warm every path up: connections, handshakes, buffers.
	for _, p := range ps.paths {
		if _, err := sendBulk(ctx, p.sink, 16<<20); err != nil {
			return ps, fmt.Errorf("warming up %s: %w", p.name, err)
		}
		if _, err := firstByte(ctx, p.echo); err != nil {
			return ps, fmt.Errorf("warming up %s: %w", p.name, err)
		}
	}
	return ps, nil
}

// forwardPath starts two daemons of variant v listening on listen: the
// second serves the sink and echo protocols, the first forwards a local
// port to each over its address of kind addrKind. The first p2pd path also
// becomes ps.a and ps.b.
func (r *runner) forwardPath(ctx context.Context, ps *pathSet, v variant, name, prefix, listen, addrKind, sink, echo string) (path, error) {
	p := path{name: name}
	var ds [2]*daemon
	for i, role := range []string{"a", "b"} {
		d, err := r.startVariant(ctx, v, prefix+"-"+role, benchDaemonFlags(listen)...)
		if d != nil {
			ps.procs = append(ps.procs, d.child)
		}
		if err != nil {
			return p, err
		}
		ds[i] = d
	}
	a, b := ds[0], ds[1]
	if err := b.listen(ctx, protoSink, sink); err != nil {
		return p, err
	}
	if err := b.listen(ctx, protoEcho, echo); err != nil {
		return p, err
	}
	to, err := b.addr(addrKind)
	if err != nil {
		return p, err
	}
	if p.sink, err = a.forward(ctx, protoSink, to); err != nil {
		return p, err
	}
	if p.echo, err = a.forward(ctx, protoEcho, to); err != nil {
		return p, err
	}
	p.pids = []int{a.pid(), b.pid()}
	if name == pathP2PD {
		ps.a, ps.b = a, b
	}
	return p, nil
}
