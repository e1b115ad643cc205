package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"time"
)

// path is one way from the client to the service.
type path struct {
	name string
	sink string // address of the sink through this path
	echo string // address of the echo through this path
	pids []int  // processes doing the tunnelling (none for direct)
	// For the QUIC paths: the UDP buffer limits the daemons started with,
	// and the forwarding daemon's log.
	udpLimits udpLimits
	log       string
	ends      pair // the forwarding and listening daemon, for the tunnels' paths
}

const (
	protoSink = "/x/bench-sink"
	protoEcho = "/x/bench-echo"
)

// startHelper runs this binary as a helper process and returns its addresses.
func (r *runner) startHelper(ctx context.Context, name string, args ...string) (*child, []string, error) {
	c, err := startChild(name, r.logs, nil, r.self, append([]string{childArg}, args...)...)
	if err != nil {
		return nil, nil, err
	}
	r.kids.add(c)
	addrs, err := c.addrs(ctx)
	if err != nil {
		return nil, nil, err
	}
	return c, addrs, nil
}

// startService runs the sink and echo service in its own process.
func (r *runner) startService(ctx context.Context, name string) (sink, echo string, err error) {
	_, addrs, err := r.startHelper(ctx, name, "service")
	if err != nil {
		return "", "", err
	}
	if len(addrs) != 2 {
		return "", "", fmt.Errorf("%s printed %d addresses, want 2", name, len(addrs))
	}
	return addrs[0], addrs[1], nil
}

// tunnels measures throughput and latency through every path to one
// service. Every repetition runs on freshly started tunnel processes: where
// the kernel happens to place two processes on the two cores lasts as long
// as the processes and moved a figure by up to 1.5x between runs, so
// processes kept for the whole run would favour one path over another in
// every repetition.
func (r *runner) tunnels(ctx context.Context) error {
	sink, echo, err := r.startService(ctx, "service")
	if err != nil {
		return err
	}
	certFile, keyFile, err := writeCertificate(r.work)
	if err != nil {
		return err
	}
	if r.udp, err = newUDPSysctl(ctx); err != nil {
		return err
	}
	defer r.udp.restore()
	if r.s.quicUDPMax == 0 {
		r.s.quicUDPMax = r.udp.orig.rmem
	}
	for rep := range r.s.reps {
		ps, err := r.setupPaths(ctx, rep, sink, echo, certFile, keyFile)
		if err == nil && r.wants("throughput") {
			err = r.throughput(ctx, ps.paths, rep)
		}
		if err == nil && r.wants("latency") {
			err = r.latency(ctx, ps.paths, rep)
		}
		if err == nil && rep == r.s.reps-1 && r.s.profile > 0 {
			if perr := r.profileForward(ctx, ps.path(r.s.profPath)); perr != nil {
				logf("profile: %v", perr)
			}
		}
		ps.stop()
		if err != nil {
			return err
		}
	}
	return nil
}

// rotate returns paths starting at index i, so that no path always runs
// first (or right after the same other path).
func rotate(paths []path, i int) []path {
	i %= len(paths)
	return append(append([]path{}, paths[i:]...), paths[:i]...)
}

// throughput measures, for repetition rep, one connection and r.s.par
// connections per path.
func (r *runner) throughput(ctx context.Context, paths []path, rep int) error {
	size := r.s.size
	gib := float64(size) / (1 << 30)
	mib := float64(size) / (1 << 20)
	for _, kind := range []struct {
		key   string
		title string
		conns int
	}{
		{"1", fmt.Sprintf("throughput, 1 connection (%s)", sizeString(size)), 1},
		{"n", fmt.Sprintf("throughput, %d connections (%s in all)", r.s.par, sizeString(size)), r.s.par},
	} {
		tput := r.res.figure("tput"+kind.key, kind.title, "MiB/s", true)
		cpu := r.res.figure("cpu"+kind.key, fmt.Sprintf("CPU of the tunnel's two processes per GiB, %d conn.", kind.conns), "core-s/GiB", false)
		sys := r.res.figure("sys"+kind.key, fmt.Sprintf("share of that CPU in the kernel, %d conn.", kind.conns), "%", false)
		writes := r.res.figure("writes"+kind.key, fmt.Sprintf("write system calls per MiB (two processes), %d conn.", kind.conns), "1/MiB", false)
		reads := r.res.figure("reads"+kind.key, fmt.Sprintf("read system calls per MiB (two processes), %d conn.", kind.conns), "1/MiB", false)
		drops := r.res.figure("udpdrops"+kind.key, fmt.Sprintf("UDP datagrams dropped at the two daemons' receive buffers per GiB, %d conn.", kind.conns), "1/GiB", false)
		for _, p := range rotate(paths, rep) {
			// The drops need ss; without it the buffers table of the
			// report says why they are missing.
			quic := p.name == pathP2PDQUIC || p.name == pathQUICSmall
			var dropsBefore int64
			if quic {
				var err error
				dropsBefore, err = udpDrops(ctx, p.pids)
				quic = err == nil
			}
			before, err := readProcs(p.pids)
			if err != nil {
				return err
			}
			var d time.Duration
			if kind.conns == 1 {
				d, err = sendBulk(ctx, p.sink, size)
			} else {
				d, err = sendParallel(ctx, p.sink, size, kind.conns)
			}
			if err != nil {
				return fmt.Errorf("%s through %s: %w", kind.title, p.name, err)
			}
			after, err := readProcs(p.pids)
			if err != nil {
				return err
			}
			tput.add(p.name, mib/d.Seconds())
			if quic {
				if dropsAfter, err := udpDrops(ctx, p.pids); err == nil {
					drops.add(p.name, float64(dropsAfter-dropsBefore)/gib)
				}
			}
			if len(p.pids) > 0 {
				st := after.sub(before)
				cpu.add(p.name, st.CPU().Seconds()/gib)
				if st.CPU() > 0 {
					sys.add(p.name, 100*st.Sys.Seconds()/st.CPU().Seconds())
				}
				writes.add(p.name, float64(st.WriteCalls)/mib)
				reads.add(p.name, float64(st.ReadCalls)/mib)
			}
			logf("%s, rep %d: %-9s %7.0f MiB/s", kind.title, rep+1, p.name, mib/d.Seconds())
		}
	}
	// What the encryption alone costs, measured while the tunnels are idle.
	c, err := cipherCost(256 << 20)
	if err != nil {
		return err
	}
	r.res.figure("cipher", "AES-128-GCM seal and open of 16 KiB records, one core", "core-s/GiB", false).add(pathCipher, c)
	return nil
}

// latency measures, for repetition rep, 64-byte round trips and
// connect-to-first-byte per path.
func (r *runner) latency(ctx context.Context, paths []path, rep int) error {
	rt := r.res.figure("rtt", "64-byte round trip over one connection (median)", "µs", false)
	conn := r.res.figure("connect", "new connection to first byte (median)", "µs", false)
	connCPU := r.res.figure("connectcpu", "CPU of the tunnel's two processes per new connection", "µs", false)
	{
		for _, p := range rotate(paths, rep) {
			ds, err := roundTrips(ctx, p.echo, 64, 100, r.s.rts)
			if err != nil {
				return fmt.Errorf("round trips through %s: %w", p.name, err)
			}
			rt.add(p.name, micros(medianDur(ds)))
		}
		// Connections alternate path by path. The tunnel processes are idle
		// while the other paths run, so their CPU time over the whole loop
		// is that of their own connections.
		per := map[string][]time.Duration{}
		cpuBefore := map[string]procStats{}
		for _, p := range paths {
			st, err := readProcs(p.pids)
			if err != nil {
				return err
			}
			cpuBefore[p.name] = st
		}
		for i := range r.s.connects {
			for _, p := range rotate(paths, i+rep) {
				d, err := firstByte(ctx, p.echo)
				if err != nil {
					return fmt.Errorf("connect through %s: %w", p.name, err)
				}
				per[p.name] = append(per[p.name], d)
			}
		}
		for _, p := range paths {
			conn.add(p.name, micros(medianDur(per[p.name])))
			if len(p.pids) == 0 {
				continue
			}
			st, err := readProcs(p.pids)
			if err != nil {
				return err
			}
			connCPU.add(p.name, micros(st.sub(cpuBefore[p.name]).CPU())/float64(r.s.connects))
		}
		logf("latency, rep %d: round trip p2pd %.0f µs, direct %.0f µs; connect p2pd %.0f µs, direct %.0f µs",
			rep+1, last(rt, pathP2PD), last(rt, pathDirect), last(conn, pathP2PD), last(conn, pathDirect))
	}
	return nil
}

// profileForward records CPU profiles of both daemons of a forward while
// one connection after another sends bulk data through it.
func (r *runner) profileForward(ctx context.Context, p path) error {
	secs := r.s.profile
	var ds []*daemon
	for _, d := range []tunnelDaemon{p.ends.a, p.ends.b} {
		pd, ok := d.(*daemon)
		if !ok {
			return fmt.Errorf("%s: no p2pd daemons of that path to profile", p.name)
		}
		ds = append(ds, pd)
	}
	logf("profiling both forward daemons for %d s under %s load", secs, r.s.profLoad)
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, d := range ds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- d.profile(pctx, secs, filepath.Join(r.s.out, "profile-"+r.s.profLoad+"-"+d.name+".pb.gz"))
		}()
	}
	deadline := time.Now().Add(time.Duration(secs)*time.Second + 500*time.Millisecond)
	var loadErr error
	ops := 0
	for ; time.Now().Before(deadline) && loadErr == nil; ops++ {
		switch r.s.profLoad {
		case "bulk":
			_, loadErr = sendBulk(pctx, p.sink, 256<<20)
		case "rtt":
			_, loadErr = roundTrips(pctx, p.echo, 64, 0, 1000)
		case "connect":
			_, loadErr = firstByte(pctx, p.echo)
		}
	}
	wg.Wait()
	close(errs)
	logf("profile load: %d %s operations", ops, r.s.profLoad)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return loadErr
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func last(f *Figure, path string) float64 {
	s := f.Samples[path]
	if len(s) == 0 {
		return 0
	}
	return s[len(s)-1]
}

func sizeString(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}
