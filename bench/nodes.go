package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"
)

// idleConns opens N concurrent connections through one forward of a fresh
// pair of daemons, for each N, and measures how the daemons' RSS grows.
func (r *runner) idleConns(ctx context.Context) error {
	_, echo, err := r.startService(ctx, "idle-service")
	if err != nil {
		return err
	}
	for _, n := range r.s.idle {
		res, err := r.idleOnce(ctx, n, echo)
		if err != nil {
			res.Error = err.Error()
			logf("idle %d: %v", n, err)
		}
		r.res.Idle = append(r.res.Idle, res)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if r.s.kubo == "" || n > kuboIdleMax {
			continue
		}
		res, err = r.kuboIdleOnce(ctx, n, echo)
		if err != nil {
			res.Error = err.Error()
			logf("kubo idle %d: %v", n, err)
		}
		r.res.Idle = append(r.res.Idle, res)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

// kuboIdleMax is the largest idle-connection count kubo is measured at:
// the figure the comparison needs is the one at 1,000.
const kuboIdleMax = 1000

// kuboIdleOnce is idleOnce through a forward between two kubo daemons; it
// measures RSS only (kubo's runtime metrics are not read).
func (r *runner) kuboIdleOnce(ctx context.Context, n int, echo string) (Idle, error) {
	res := Idle{N: n, Path: pathKubo}
	ps := &pathSet{}
	defer ps.stop()
	p := path{}
	var ds [2]*kuboDaemon
	for i, role := range []string{"a", "b"} {
		d, err := r.startKubo(ctx, fmt.Sprintf("kubo-idle%d-%s", n, role))
		if d != nil {
			ps.procs = append(ps.procs, d.child)
		}
		if err != nil {
			return res, err
		}
		ds[i] = d
	}
	a, b := ds[0], ds[1]
	if err := b.listen(ctx, protoEcho, echo); err != nil {
		return res, err
	}
	fwd, err := a.forward(ctx, protoEcho, b.p2pAddr())
	if err != nil {
		return res, err
	}
	p.echo = fwd
	if _, err := firstByte(ctx, fwd); err != nil {
		return res, fmt.Errorf("first connection: %w", err)
	}
	time.Sleep(r.s.settleIdle)
	rssOf := func() ([2]int64, error) {
		var out [2]int64
		for i, d := range ds {
			st, err := readProc(d.pid())
			if err != nil {
				return out, err
			}
			out[i] = st.RSS
		}
		return out, nil
	}
	before, err := rssOf()
	if err != nil {
		return res, err
	}
	logf("kubo idle connections: opening %d through one forward", n)
	t0 := time.Now()
	conns, failed, ferr := openIdle(ctx, fwd, n, 64)
	defer closeAll(conns)
	res.OpenSeconds = time.Since(t0).Seconds()
	res.Opened = len(conns)
	time.Sleep(r.s.settleIdle)
	after, err := rssOf()
	if err != nil {
		return res, err
	}
	if out, err := a.ipfs(ctx, "p2p", "stream", "ls", "--enc=json"); err == nil {
		var ls struct{ Streams []json.RawMessage }
		if json.Unmarshal([]byte(out), &ls) == nil {
			res.Streams = len(ls.Streams)
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
	logf("kubo idle %d: opened %d in %.1f s, %d working, %d streams; RSS per connection %.1f KiB (forwarding), %.1f KiB (listening)",
		n, res.Opened, res.OpenSeconds, res.Working, res.Streams, res.KiBPerConnA, res.KiBPerConnB)
	switch {
	case failed > 0:
		return res, fmt.Errorf("%d of %d connections failed to open; first: %w", failed, n, ferr)
	case bad > 0:
		return res, fmt.Errorf("%d of %d open connections failed the second echo; first: %w", bad, n, cerr)
	}
	return res, nil
}

func (r *runner) idleOnce(ctx context.Context, n int, echo string) (Idle, error) {
	res := Idle{N: n}
	name := fmt.Sprintf("idle%d", n)
	a, err := r.startDaemon(ctx, name+"-a", r.benchDaemonFlags(tcpListen)...)
	if err != nil {
		return res, err
	}
	defer a.stop()
	b, err := r.startDaemon(ctx, name+"-b", r.benchDaemonFlags(tcpListen)...)
	if err != nil {
		return res, err
	}
	defer b.stop()
	if err := b.listen(ctx, protoEcho, echo); err != nil {
		return res, err
	}
	bAddr, err := b.addr("/tcp/")
	if err != nil {
		return res, err
	}
	fwd, err := a.forward(ctx, protoEcho, bAddr)
	if err != nil {
		return res, err
	}
	if _, err := firstByte(ctx, fwd); err != nil {
		return res, fmt.Errorf("first connection: %w", err)
	}
	time.Sleep(r.s.settleIdle)
	before, err := rss(a, b)
	if err != nil {
		return res, err
	}
	mBefore, err := runtimeMetrics(ctx, a, b)
	if err != nil {
		return res, err
	}

	logf("idle connections: opening %d through one forward", n)
	t0 := time.Now()
	conns, failed, ferr := openIdle(ctx, fwd, n, 64)
	defer closeAll(conns)
	res.OpenSeconds = time.Since(t0).Seconds()
	res.Opened = len(conns)
	time.Sleep(r.s.settleIdle)
	after, err := rss(a, b)
	if err != nil {
		return res, err
	}
	mAfter, err := runtimeMetrics(ctx, a, b)
	if err != nil {
		return res, err
	}
	for i := range 2 {
		res.HeapKiBPerConn[i] = (mAfter[i][heapInuse] - mBefore[i][heapInuse]) / 1024 / float64(n)
		res.StackKiBPerConn[i] = (mAfter[i][stackInuse] - mBefore[i][stackInuse]) / 1024 / float64(n)
		res.GoroutinesPerConn[i] = (mAfter[i][goroutines] - mBefore[i][goroutines]) / float64(n)
	}
	if res.Streams, err = a.streams(ctx); err != nil {
		return res, err
	}
	if r.s.profile > 0 {
		for _, d := range []*daemon{a, b} {
			for _, what := range []string{"heap", "goroutine"} {
				if err := d.pprof(ctx, what, filepath.Join(r.s.out, what+"-"+d.name+".pb.gz")); err != nil {
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
	logf("idle %d: opened %d in %.1f s, %d working, %d streams; RSS per connection %.1f KiB (forwarding), %.1f KiB (listening); heap %.1f/%.1f KiB, stacks %.1f/%.1f KiB, goroutines %.1f/%.1f",
		n, res.Opened, res.OpenSeconds, res.Working, res.Streams, res.KiBPerConnA, res.KiBPerConnB,
		res.HeapKiBPerConn[0], res.HeapKiBPerConn[1], res.StackKiBPerConn[0], res.StackKiBPerConn[1],
		res.GoroutinesPerConn[0], res.GoroutinesPerConn[1])
	switch {
	case failed > 0:
		return res, fmt.Errorf("%d of %d connections failed to open; first: %w", failed, n, ferr)
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

// runtimeMetrics reads the heap, stack and goroutine metrics of two daemons.
func runtimeMetrics(ctx context.Context, a, b *daemon) ([2]map[string]float64, error) {
	var out [2]map[string]float64
	for i, d := range []*daemon{a, b} {
		m, err := d.metrics(ctx, heapInuse, stackInuse, goroutines)
		if err != nil {
			return out, err
		}
		out[i] = m
	}
	return out, nil
}

// rss reads the RSS of two daemons.
func rss(a, b *daemon) ([2]int64, error) {
	var out [2]int64
	for i, d := range []*daemon{a, b} {
		st, err := readProc(d.pid())
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
	for i := range r.s.reps {
		d, err := r.startDaemon(ctx, fmt.Sprintf("start%d", i), r.benchDaemonFlags(tcpListen)...)
		if err != nil {
			return err
		}
		start.add(pathP2PD, float64(d.startup)/float64(time.Millisecond))
		time.Sleep(r.s.settleIdle)
		st, err := readProc(d.pid())
		d.stop()
		if err != nil {
			return err
		}
		idle.add(pathP2PD, float64(st.RSS)/(1<<20))
		logf("startup, rep %d: %.0f ms to the API, idle RSS %.1f MiB", i+1, last(start, pathP2PD), last(idle, pathP2PD))
		if r.s.kubo == "" {
			continue
		}
		k, err := r.startKubo(ctx, fmt.Sprintf("kubo-start%d", i))
		if err != nil {
			if k != nil {
				k.stop()
			}
			return err
		}
		start.add(pathKubo, float64(k.startup)/float64(time.Millisecond))
		time.Sleep(r.s.settleIdle)
		st, err = readProc(k.pid())
		k.stop()
		if err != nil {
			return err
		}
		idle.add(pathKubo, float64(st.RSS)/(1<<20))
		logf("startup, rep %d: kubo %.0f ms to ready, idle RSS %.1f MiB", i+1, last(start, pathKubo), last(idle, pathKubo))
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
	bootAddr, err := boot.addr("/tcp/")
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
