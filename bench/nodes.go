package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"
)

// idleConns opens N concurrent connections through one forward of a fresh
// pair of daemons, for each N, and measures how the daemons' RSS grows:
// through p2pd over TCP at every count, through kubo and through p2pd over
// QUIC at counts up to idleCompareMax.
func (r *runner) idleConns(ctx context.Context) error {
	_, echo, err := r.startService(ctx, "idle-service")
	if err != nil {
		return err
	}
	for _, n := range r.s.idle {
		runs := []idleRun{{path: pathP2PD, start: r.p2pdStarter(variant{bin: r.bin}, tcpListen), kind: "/tcp/", par: 64, answerWithin: 30 * time.Second}}
		if n <= idleCompareMax {
			if r.s.kubo != "" {
				runs = append(runs, idleRun{path: pathKubo, start: r.kuboStarter(), kind: "/tcp/", par: 64, answerWithin: 30 * time.Second})
			}
			quic := idleRun{path: pathP2PDQUIC, start: r.p2pdStarter(variant{bin: r.bin}, quicListen), kind: "/quic-v1",
				par: quicStreamCap, answerWithin: quicAnswerWithin, probe: true}
			if r.s.quick {
				quic.answerWithin, quic.probe = quicAnswerWithinQuick, false
			}
			runs = append(runs, quic)
		}
		for _, run := range runs {
			res, err := r.idleOnce(ctx, n, echo, run)
			if err != nil {
				res.Error = err.Error()
				logf("%s idle %d: %v", run.path, n, err)
			}
			r.res.Idle = append(r.res.Idle, res)
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}
	return nil
}

// idleCompareMax is the largest idle-connection count kubo and p2pd over
// QUIC are measured at: the figure the comparison needs is the one at
// 1,000.
const idleCompareMax = 1000

// quicStreamCap is the most streams a QUIC connection of go-libp2p admits
// at once (quicreuse's MaxIncomingStreams).
const quicStreamCap = 256

// quicAnswerWithin is how long a connection through the forward over QUIC
// may take to echo its first byte before it counts as not opened: past the
// stream cap, connections wait without an answer.
const quicAnswerWithin = 5 * time.Second

// quicAnswerWithinQuick is quicAnswerWithin for -quick, which also leaves
// out the probes (they wait for the forward's dial timeout).
const quicAnswerWithinQuick = 2 * time.Second

// idleRun is one forward the idle-connections figure is measured through.
type idleRun struct {
	path  string
	start startFunc
	kind  string // the transport the forward uses: "/tcp/" or "/quic-v1"
	par   int    // connections opened at once
	// answerWithin bounds the wait for a new connection's first echo.
	answerWithin time.Duration
	// probe: when connections failed to open, see what one more connection
	// gets (probeWaiting).
	probe bool
}

// idleOnce opens n connections through one forward between a fresh pair of
// daemons and measures their RSS (and, for p2pd, heap, stacks and
// goroutines) before and after.
func (r *runner) idleOnce(ctx context.Context, n int, echo string, run idleRun) (Idle, error) {
	res := Idle{N: n, Path: run.path, AnswerWithinSeconds: run.answerWithin.Seconds()}
	if run.path == pathP2PD {
		res.Path = ""
	}
	ps := &pathSet{}
	defer ps.stop()
	prefix := fmt.Sprintf("idle%d", n) // daemons, logs and profiles: idle1000-a, kubo-idle1000-a, ...
	if run.path != pathP2PD {
		prefix = run.path + "-" + prefix
	}
	pr, err := startPair(ctx, ps, prefix, run.start)
	if err != nil {
		return res, err
	}
	locals, err := pr.connect(ctx, run.kind, [2]string{protoEcho, echo})
	if err != nil {
		return res, err
	}
	fwd := locals[0]
	if _, err := firstByte(ctx, fwd); err != nil {
		return res, fmt.Errorf("first connection: %w", err)
	}
	time.Sleep(r.s.settleIdle)
	before, err := rss(pr)
	if err != nil {
		return res, err
	}
	mBefore, withMetrics, err := runtimeMetrics(ctx, pr)
	if err != nil {
		return res, err
	}

	logf("%s idle connections: opening %d through one forward", run.path, n)
	t0 := time.Now()
	conns, failed, ferr := openIdle(ctx, fwd, n, run.par, run.answerWithin)
	defer func() { closeAll(conns) }()
	res.OpenSeconds = time.Since(t0).Seconds()
	res.Opened = len(conns)
	time.Sleep(r.s.settleIdle)
	after, err := rss(pr)
	if err != nil {
		return res, err
	}
	if withMetrics {
		mAfter, _, err := runtimeMetrics(ctx, pr)
		if err != nil {
			return res, err
		}
		for i := range 2 {
			res.HeapKiBPerConn[i] = (mAfter[i][heapInuse] - mBefore[i][heapInuse]) / 1024 / float64(n)
			res.StackKiBPerConn[i] = (mAfter[i][stackInuse] - mBefore[i][stackInuse]) / 1024 / float64(n)
			res.GoroutinesPerConn[i] = (mAfter[i][goroutines] - mBefore[i][goroutines]) / float64(n)
		}
	}
	if res.Streams, err = pr.a.streams(ctx); err != nil {
		return res, err
	}
	if r.s.profile > 0 {
		for _, d := range []tunnelDaemon{pr.a, pr.b} {
			p, ok := d.(profiler)
			if !ok {
				continue
			}
			for _, what := range []string{"heap", "goroutine"} {
				if err := p.pprof(ctx, what, filepath.Join(r.s.out, what+"-"+d.proc().name+".pb.gz")); err != nil {
					logf("idle %d: %v", n, err)
				}
			}
		}
	}
	bad, cerr := checkIdle(conns, 256)
	res.Working = len(conns) - bad
	for i := range 2 {
		res.RSSBeforeMiB[i] = float64(before[i]) / (1 << 20)
		res.RSSAfterMiB[i] = float64(after[i]) / (1 << 20)
	}
	res.KiBPerConnA = float64(after[0]-before[0]) / 1024 / float64(n)
	res.KiBPerConnB = float64(after[1]-before[1]) / 1024 / float64(n)
	runtime := ""
	if withMetrics {
		runtime = fmt.Sprintf("; heap %.1f/%.1f KiB, stacks %.1f/%.1f KiB, goroutines %.1f/%.1f",
			res.HeapKiBPerConn[0], res.HeapKiBPerConn[1], res.StackKiBPerConn[0], res.StackKiBPerConn[1],
			res.GoroutinesPerConn[0], res.GoroutinesPerConn[1])
	}
	logf("%s idle %d: opened %d in %.1f s, %d working, %d streams; RSS per connection %.1f KiB (forwarding), %.1f KiB (listening)%s",
		run.path, n, res.Opened, res.OpenSeconds, res.Working, res.Streams, res.KiBPerConnA, res.KiBPerConnB, runtime)
	if run.probe && failed > 0 && len(conns) > 0 {
		res.Probes = probeWaiting(ctx, fwd, &conns)
	}
	switch {
	case failed > 0:
		return res, fmt.Errorf("%d of %d connections failed to open (no echo within %s); first: %w", failed, n, run.answerWithin, ferr)
	case bad > 0:
		return res, fmt.Errorf("%d of %d open connections failed the second echo; first: %w", bad, n, cerr)
	}
	return res, nil
}

// Go runtime metrics the idle-connections figure breaks RSS down into.
const (
	heapInuse  = "go_memstats_heap_inuse_bytes"
	stackInuse = "go_memstats_stack_inuse_bytes"
	goroutines = "go_goroutines"
)

// runtimeMetrics reads the heap, stack and goroutine metrics of a pair's
// daemons; ok is false for daemons that do not serve them (kubo).
func runtimeMetrics(ctx context.Context, pr pair) (out [2]map[string]float64, ok bool, err error) {
	for i, d := range []tunnelDaemon{pr.a, pr.b} {
		rr, isReader := d.(runtimeReader)
		if !isReader {
			return out, false, nil
		}
		if out[i], err = rr.metrics(ctx, heapInuse, stackInuse, goroutines); err != nil {
			return out, false, err
		}
	}
	return out, true, nil
}

// rss reads the RSS of a pair's daemons.
func rss(pr pair) ([2]int64, error) {
	var out [2]int64
	for i, pid := range pr.pids() {
		st, err := readProc(pid)
		if err != nil {
			return out, err
		}
		out[i] = st.RSS
	}
	return out, nil
}

// startup starts daemons one after the other and measures the time from exec
// to the API's first answer, and the RSS once idle.
func (r *runner) startup(ctx context.Context) error {
	start := r.res.figure("startup", "daemon start to API answering", "ms", false)
	idle := r.res.figure("idlerss", "RSS of an idle daemon", "MiB", false)
	type kind struct {
		path, prefix string
		start        startFunc
	}
	kinds := []kind{{pathP2PD, "start", r.p2pdStarter(variant{bin: r.bin}, tcpListen)}}
	if r.s.kubo != "" {
		kinds = append(kinds, kind{pathKubo, "kubo-start", r.kuboStarter()})
	}
	for i := range r.s.reps {
		for _, k := range kinds {
			d, err := k.start(ctx, fmt.Sprintf("%s%d", k.prefix, i))
			if err != nil {
				if d != nil {
					d.proc().stop()
				}
				return err
			}
			start.add(k.path, float64(d.startupTime())/float64(time.Millisecond))
			time.Sleep(r.s.settleIdle)
			st, err := readProc(d.proc().pid())
			d.proc().stop()
			if err != nil {
				return err
			}
			idle.add(k.path, float64(st.RSS)/(1<<20))
			logf("startup, rep %d: %s %.0f ms to ready, idle RSS %.1f MiB", i+1, k.path, last(start, k.path), last(idle, k.path))
		}
	}
	return nil
}

// discovery builds a network of r.s.nodes daemons on a private DHT and
// measures, several times, the time from starting one more daemon with a
// fresh rendezvous string to another node's find returning it.
func (r *runner) discovery(ctx context.Context) error {
	fig := r.res.figure("discovery", fmt.Sprintf("rendezvous discovery, %d daemon processes", r.s.nodes), "ms", false)
	rssFig := r.res.figure("dhtrss", "RSS of a daemon in the DHT network", "MiB", false)
	dhtFlags := func(boot string) []string {
		return []string{"--listen", tcpListen, "--dht", "server", "--dht-prefix", "/bench", "--mdns=false", "--bootstrap", boot}
	}
	logf("discovery: starting %d daemons", r.s.nodes-1)
	boot, err := r.startDaemon(ctx, "disc0", dhtFlags("none")...)
	if err != nil {
		return err
	}
	bootAddr, err := boot.peerAddr("/tcp/")
	if err != nil {
		return err
	}
	nodes := []*daemon{boot}
	var (
		mu    sync.Mutex // guards nodes, first
		first error
		wg    sync.WaitGroup
		sem   = make(chan struct{}, 4)
	)
	for i := 1; i < r.s.nodes-1; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			d, err := r.startDaemon(ctx, fmt.Sprintf("disc%d", i), dhtFlags(bootAddr)...)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && first == nil {
				first = err
			}
			if err == nil {
				nodes = append(nodes, d)
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	time.Sleep(3 * r.s.settleIdle) // let routing tables fill
	finder := nodes[1]

	for rep := range r.s.discReps {
		ns := fmt.Sprintf("bench-rendezvous-%d", rep)
		fctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		found := make(chan foundAt, 1)
		var fwg sync.WaitGroup
		fwg.Add(1)
		go func() {
			defer fwg.Done()
			found <- findFirst(fctx, finder, ns)
		}()
		last, err := r.startDaemon(ctx, fmt.Sprintf("disc-last%d", rep), append(dhtFlags(bootAddr), "--rendezvous", ns)...)
		if err != nil {
			cancel()
			fwg.Wait()
			return err
		}
		f := <-found
		cancel()
		fwg.Wait()
		last.stop()
		if f.err != nil {
			return fmt.Errorf("rep %d: %w", rep+1, f.err)
		}
		if f.id != last.id {
			return fmt.Errorf("rep %d: find returned %s, want %s", rep+1, f.id, last.id)
		}
		ms := float64(f.at.Sub(last.execAt)) / float64(time.Millisecond)
		fig.add(pathP2PD, ms)
		logf("discovery, rep %d: found %.0f ms after the start (its API answered after %.0f ms)",
			rep+1, ms, float64(last.startup)/float64(time.Millisecond))
	}
	for _, d := range nodes {
		if st, err := readProc(d.pid()); err == nil {
			rssFig.add(pathP2PD, float64(st.RSS)/(1<<20))
		}
	}
	return nil
}

type foundAt struct {
	id  string
	at  time.Time
	err error
}

// findFirst asks d to find ns with several overlapping requests, started
// 50 ms apart (each one polls the DHT every 250 ms until it finds someone),
// and returns the first peer found and when.
func findFirst(ctx context.Context, d *daemon, ns string) foundAt {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	const finders = 5
	out := make(chan foundAt, finders)
	var wg sync.WaitGroup
	for i := range finders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-time.After(time.Duration(i) * 50 * time.Millisecond):
			case <-ctx.Done():
				return
			}
			for ctx.Err() == nil {
				peers, err := d.cl.Find(ctx, ns, 30*time.Second)
				if err != nil {
					if ctx.Err() == nil {
						time.Sleep(50 * time.Millisecond)
					}
					continue
				}
				if len(peers) > 0 {
					out <- foundAt{id: peers[0].ID, at: time.Now()}
					return
				}
			}
		}()
	}
	var res foundAt
	select {
	case res = <-out:
	case <-ctx.Done():
		res.err = errors.New("nobody found the new node within 60 s")
	}
	cancel()
	wg.Wait()
	return res
}
