package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
)

// pathSet is the tunnel processes of one repetition.
type pathSet struct {
	paths []path   // p2pd over TCP first
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

// path returns the path named name, or one without daemons (which
// profileForward refuses) if the set has none of that name.
func (ps *pathSet) path(name string) path {
	for _, p := range ps.paths {
		if p.name == name {
			return p
		}
	}
	return path{name: name}
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
		cmp, err = r.pairPath(ctx, ps, pathCompare, fmt.Sprintf("cmp%d", rep), r.p2pdStarter(r.s.compare, tcpListen), "/tcp/", sink, echo)
		return err
	}
	if rep%2 == 1 {
		if err := startCompare(); err != nil {
			return ps, err
		}
	}
	p2pd, err := r.pairPath(ctx, ps, pathP2PD, fmt.Sprintf("fwd%d", rep), r.p2pdStarter(variant{bin: r.bin}, tcpListen), "/tcp/", sink, echo)
	if err != nil {
		return ps, err
	}
	if rep%2 == 0 {
		if err := startCompare(); err != nil {
			return ps, err
		}
	}
	// QUIC first with an untuned machine's UDP buffers, then with those
	// quic-go asks for (see udpbuf.go).
	quicSmall, err := r.quicPath(ctx, ps, rep, false, sink, echo)
	if err != nil {
		return ps, err
	}
	var quic path
	if r.udp.canRaise() {
		if quic, err = r.quicPath(ctx, ps, rep, true, sink, echo); err != nil {
			return ps, err
		}
	}

	ref, err := r.refPath(ctx, ps, pathRef, fmt.Sprintf("ref%d", rep), sink, echo, "-cert", certFile, "-key", keyFile)
	if err != nil {
		return ps, err
	}
	plain, err := r.refPath(ctx, ps, pathPlain, fmt.Sprintf("plain%d", rep), sink, echo, "-plain")
	if err != nil {
		return ps, err
	}
	direct := path{name: pathDirect, sink: sink, echo: echo}
	ps.paths = []path{p2pd, direct, ref}
	if quic.name != "" {
		ps.paths = append(ps.paths, quic)
	}
	ps.paths = append(ps.paths, plain, quicSmall)

	if r.s.compare.bin != "" {
		ps.paths = append(ps.paths, cmp)
	}
	if r.s.kubo != "" {
		kubo, err := r.pairPath(ctx, ps, pathKubo, fmt.Sprintf("kubo%d", rep), r.kuboStarter(), "/tcp/", sink, echo)
		if err != nil {
			return ps, err
		}
		ps.paths = append(ps.paths, kubo)
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
	if rep == 0 {
		for _, p := range ps.paths {
			if p.name == pathP2PDQUIC || p.name == pathQUICSmall {
				r.recordQUICBuffers(ctx, p)
			}
		}
	}
	return ps, nil
}

// quicPath starts the daemons of a forward over QUIC, without
// CAP_NET_ADMIN, with net.core.rmem_max and wmem_max set to what quic-go
// asks for (raised) or to -quic-udp-max-without, and connects them before
// the limits change again (a socket's buffers are sized when it is made).
// As root without a writable sysctl, the raised path keeps CAP_NET_ADMIN:
// quic-go then forces its size past the limits.
func (r *runner) quicPath(ctx context.Context, ps *pathSet, rep int, raised bool, sink, echo string) (path, error) {
	name, prefix, limit := pathQUICSmall, fmt.Sprintf("quicsmall%d", rep), r.s.quicUDPMax
	if raised {
		name, prefix, limit = pathP2PDQUIC, fmt.Sprintf("quic%d", rep), quicWantBuffer
	}
	v := variant{bin: r.bin, noNetAdmin: !raised || r.udp.canSet}
	lim, err := r.udp.set(limit)
	if err != nil {
		return path{}, fmt.Errorf("setting net.core.rmem_max/wmem_max to %d for %s: %w", limit, name, err)
	}
	p, err := r.pairPath(ctx, ps, name, prefix, r.p2pdStarter(v, quicListen), "/quic-v1", sink, echo)
	if err != nil {
		return p, err
	}
	p.udpLimits, p.log = lim, filepath.Join(r.logs, prefix+"-a.log")
	if _, err := firstByte(ctx, p.echo); err != nil {
		return p, fmt.Errorf("connecting %s: %w", name, err)
	}
	return p, nil
}

// recordQUICBuffers notes what the daemons of QUIC path p got for their
// UDP sockets and logs it.
func (r *runner) recordQUICBuffers(ctx context.Context, p path) {
	qb := QUICBuffers{Path: p.name, RmemMax: p.udpLimits.rmem, WmemMax: p.udpLimits.wmem,
		MachineRmemMax: r.udp.orig.rmem, MachineWmemMax: r.udp.orig.wmem}
	var notes []string
	if r.udp.why != "" {
		notes = append(notes, "limits left as they were: "+r.udp.why)
	}
	for i, pid := range p.pids {
		na, err := hasNetAdmin(pid)
		if err != nil {
			notes = append(notes, err.Error())
		}
		qb.NetAdmin[i] = na
		st, err := udpSocketStats(ctx, pid)
		if err != nil {
			notes = append(notes, err.Error())
		}
		qb.Recv[i], qb.Send[i] = st.rb, st.tb
	}
	qb.Warning = quicBufferWarning(p.log)
	qb.Note = strings.Join(notes, "; ")
	logf("%s: net.core.rmem_max %d, wmem_max %d, CAP_NET_ADMIN %v; UDP socket skmem rb %v, tb %v; quic-go: %q %s",
		p.name, qb.RmemMax, qb.WmemMax, qb.NetAdmin, qb.Recv, qb.Send, qb.Warning, qb.Note)
	r.res.QUICBuffers = append(r.res.QUICBuffers, qb)
}

// refPath starts the two halves of the reference tunnel (args say which
// kind: a certificate or -plain), each mapping one port to the sink and one
// to the echo.
func (r *runner) refPath(ctx context.Context, ps *pathSet, name, prefix, sink, echo string, args ...string) (path, error) {
	start := func(role string, maps ...string) (*child, []string, error) {
		a := append([]string{"reftunnel", "-role", role}, args...)
		for _, m := range maps {
			a = append(a, "-map", "127.0.0.1:0="+m)
		}
		c, addrs, err := r.startHelper(ctx, prefix+"-"+role, a...)
		if c != nil {
			ps.procs = append(ps.procs, c)
		}
		if err == nil && len(addrs) != len(maps) {
			err = fmt.Errorf("%s-%s printed %d addresses, want %d", prefix, role, len(addrs), len(maps))
		}
		return c, addrs, err
	}
	exit, exitAddrs, err := start("exit", sink, echo)
	if err != nil {
		return path{}, err
	}
	entry, entryAddrs, err := start("entry", exitAddrs...)
	if err != nil {
		return path{}, err
	}
	return path{name: name, sink: entryAddrs[0], echo: entryAddrs[1], pids: []int{entry.pid(), exit.pid()}}, nil
}
