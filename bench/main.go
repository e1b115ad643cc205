// Command bench measures p2pd side by side with the limits it is judged
// against, in one run: plain loopback TCP ("direct") and a minimal reference
// tunnel (TCP -> one TLS 1.3 connection per client connection -> TCP, see
// package reftunnel). It builds p2pd, starts daemons on 127.0.0.1 as
// separate processes, drives them through the Go client, and alternates the
// paths being compared within each repetition, so that the ratios it
// reports are not skewed by a shared machine's drift.
//
// Usage, from the repository root:
//
//	go run ./bench            # full run; publishes BENCHMARKS.md and bench/results/
//	go run ./bench -quick     # one to two minutes; writes bench/out/ only
//
// It writes results.json (raw samples), report.md (the tables) and
// chart.svg (ratios) to -out, and with -publish also to bench/results/ and
// between the markers of BENCHMARKS.md. No figure is pass/fail: the
// targets are reported as measured. -compare BINARY measures another p2pd
// build as one more path (for judging a change), -profile N saves CPU
// profiles of the forward's daemons under load, -render re-renders the
// reports from a saved results.json.
//
// It needs Linux (/proc) and, for 10,000 connections, an open-file limit
// of about 12,000 per process (it raises its soft limit, which the
// processes it starts inherit).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// settings are the harness's flags.
type settings struct {
	quick      bool
	reps       int
	size       int64
	par        int
	rts        int
	connects   int
	idle       []int
	nodes      int
	discReps   int
	only       map[string]bool
	out        string
	publish    bool
	bin        string
	profile    int    // seconds of CPU profile of the forward's daemons; 0: none
	profLoad   string // the load while profiling: bulk, rtt or connect
	profPath   string // the forward profiled: pathP2PD or pathP2PDQUIC
	keep       bool
	render     string  // re-render the reports from this results.json instead of measuring
	compare    variant // a second p2pd to measure side by side; bin "" for none
	kubo       string  // kubo's ipfs binary; "" when kubo is not measured
	quicUDPMax int64   // net.core.rmem_max/wmem_max for the QUIC path without raised buffers; 0: the machine's
	maxProcs   int     // cores for each daemon's Go code (p2pd --max-procs, kubo GOMAXPROCS); 0: their defaults
	settleIdle time.Duration
}

// sections of a run, for -only.
var sections = []string{"throughput", "latency", "idle", "startup", "discovery"}

func main() {
	if len(os.Args) > 1 && os.Args[1] == childArg {
		if err := runChild(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func parseFlags() (settings, error) {
	var s settings
	var idle, only string
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.BoolVar(&s.quick, "quick", false, "a run of one to two minutes: smaller sizes and counts (figures are rougher)")
	fs.IntVar(&s.reps, "reps", 0, "repetitions of each comparison (default 5, quick 3)")
	size := fs.String("size", "", "bytes per single-connection transfer, e.g. 1GiB, 64MiB (default 1GiB, quick 64MiB)")
	fs.IntVar(&s.par, "parallel", 8, "connections of the parallel transfer")
	fs.IntVar(&s.rts, "round-trips", 0, "64-byte round trips per repetition (default 5000, quick 1000)")
	fs.IntVar(&s.connects, "connects", 200, "new connections per repetition of the connect-to-first-byte figure")
	fs.StringVar(&idle, "idle", "", "comma-separated counts of concurrent idle connections (default 1000,10000; quick 1000)")
	fs.IntVar(&s.nodes, "nodes", 0, "daemons in the discovery network (default 50, quick 10)")
	fs.IntVar(&s.discReps, "discovery-reps", 0, "discovery repetitions (default 5, quick 2)")
	fs.StringVar(&only, "only", "", "comma-separated sections to run: "+strings.Join(sections, ","))
	fs.StringVar(&s.out, "out", "bench/out", "directory for results.json, report.md, chart.svg, logs and profiles")
	publish := fs.String("publish", "auto", "also write BENCHMARKS.md and bench/results/: true, false or auto (= not -quick and no -only)")
	fs.StringVar(&s.bin, "bin", "", "use this p2pd binary instead of building ./cmd/p2pd")
	fs.IntVar(&s.profile, "profile", 0, "after the throughput and latency figures, record `N` seconds of CPU profile of both forward daemons under load; also save heap and goroutine profiles of the daemons holding idle connections")
	fs.StringVar(&s.profLoad, "profile-load", "bulk", "load during -profile: bulk (1 connection), rtt (64-byte round trips) or connect (new connections)")
	fs.StringVar(&s.profPath, "profile-path", pathP2PD, "the forward -profile profiles: "+pathP2PD+" (over TCP) or "+pathP2PDQUIC+" (over QUIC, UDP buffers raised)")
	fs.StringVar(&s.render, "render", "", "measure nothing: write the report, chart and (with -publish) BENCHMARKS.md again from this `results.json`")
	fs.BoolVar(&s.keep, "keep", false, "keep the work directory (repos, logs of every process)")
	compare := fs.String("compare", "", "also measure a forward through this other p2pd `BINARY` (path \"p2pd-b\"), e.g. a build before a change")
	fs.StringVar(&s.kubo, "kubo", "", "also measure kubo's ipfs p2p forward between two kubo daemons run from this `ipfs` binary (bench/kubo/build.sh builds it)")
	fs.IntVar(&s.maxProcs, "max-procs", 1, "run each daemon's Go code (p2pd and kubo alike) on at most `N` cores: p2pd gets --max-procs N, kubo GOMAXPROCS=N; 0 leaves both at Go's default. Four busy daemons share this machine's cores during the figures, a deployed daemon does not")
	fs.Int64Var(&s.quicUDPMax, "quic-udp-max-without", linuxDefaultUDPMax, "net.core.rmem_max and wmem_max (`BYTES`) the daemons of the QUIC path without raised UDP buffers start with, when root (Linux's default; 0: the machine's value); the other QUIC path gets the 7 MiB quic-go asks for. Both run without CAP_NET_ADMIN, and the machine's values are restored at the end")
	compareEnv := fs.String("compare-env", "", "comma-separated `K=V` environment of the -compare daemons (alone: the same binary with this environment)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return s, err
	}
	if fs.NArg() > 0 {
		return s, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	def := func(v *int, full, quick int) {
		if *v == 0 {
			*v = full
			if s.quick {
				*v = quick
			}
		}
	}
	def(&s.reps, 5, 3)
	def(&s.rts, 5000, 1000)
	def(&s.nodes, 50, 10)
	def(&s.discReps, 5, 2)
	s.size = 1 << 30
	if s.quick {
		s.size = 64 << 20
	}
	if *size != "" {
		n, err := parseSize(*size)
		if err != nil {
			return s, err
		}
		s.size = n
	}
	if idle == "" {
		idle = "1000,10000"
		if s.quick {
			idle = "1000"
		}
	}
	for _, f := range strings.Split(idle, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return s, fmt.Errorf("-idle: %q is not a positive count", f)
		}
		s.idle = append(s.idle, n)
	}
	s.only = map[string]bool{}
	if only != "" {
		for _, o := range strings.Split(only, ",") {
			known := false
			for _, k := range sections {
				known = known || k == o
			}
			if !known {
				return s, fmt.Errorf("-only: unknown section %q (known: %s)", o, strings.Join(sections, ","))
			}
			s.only[o] = true
		}
	}
	switch s.profLoad {
	case "bulk", "rtt", "connect":
	default:
		return s, fmt.Errorf("-profile-load: want bulk, rtt or connect, not %q", s.profLoad)
	}
	if s.profPath != pathP2PD && s.profPath != pathP2PDQUIC {
		return s, fmt.Errorf("-profile-path: want %s or %s, not %q", pathP2PD, pathP2PDQUIC, s.profPath)
	}
	switch *publish {
	case "auto":
		s.publish = !s.quick && only == ""
	case "true", "false":
		s.publish = *publish == "true"
	default:
		return s, fmt.Errorf("-publish: want true, false or auto, not %q", *publish)
	}
	if s.maxProcs < 0 {
		return s, errors.New("-max-procs: want a number of cores, or 0 for the daemons' defaults")
	}
	if s.reps < 1 || s.par < 1 || s.rts < 1 || s.connects < 1 || s.nodes < 3 || s.discReps < 1 || s.size < int64(s.par) {
		return s, errors.New("counts must be positive (and -nodes at least 3, -size at least -parallel)")
	}
	if *compare != "" || *compareEnv != "" {
		s.compare.bin = *compare
		if *compareEnv != "" {
			s.compare.env = strings.Split(*compareEnv, ",")
		}
	} else {
		s.compare.bin = ""
	}
	s.settleIdle = 3 * time.Second
	if s.quick {
		s.settleIdle = time.Second
	}
	return s, nil
}

// parseSize reads 1GiB, 64MiB, 512KiB or a plain byte count.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	for suf, m := range map[string]int64{"GiB": 1 << 30, "MiB": 1 << 20, "KiB": 1 << 10} {
		if v, ok := strings.CutSuffix(s, suf); ok {
			s, mult = v, m
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("-size: %q is not a size like 1GiB or 64MiB", s)
	}
	return n * mult, nil
}

// runner holds one run's state.
type runner struct {
	s       settings
	root    string // the repository root
	bin     string // the p2pd binary
	self    string // this binary, for the helper processes
	work    string // repos and scratch files
	logs    string // one log per child process
	kids    children
	udp     *udpSysctl // the UDP buffer limits, changed for the QUIC paths
	res     *Results
	started time.Time
}

func (r *runner) wants(section string) bool { return len(r.s.only) == 0 || r.s.only[section] }

func run() error {
	s, err := parseFlags()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	r := &runner{s: s, started: time.Now()}
	if r.root, err = repoRoot(); err != nil {
		return err
	}
	if !filepath.IsAbs(s.out) {
		r.s.out = filepath.Join(r.root, s.out)
	}
	if err := os.MkdirAll(r.s.out, 0o755); err != nil {
		return err
	}
	if s.render != "" {
		return r.rerender(s.render)
	}
	if r.work, err = os.MkdirTemp("", "p2pd-bench-"); err != nil {
		return err
	}
	if !s.keep {
		defer os.RemoveAll(r.work)
	}
	r.logs = filepath.Join(r.s.out, "logs")
	_ = os.RemoveAll(r.logs)
	if err := os.MkdirAll(r.logs, 0o755); err != nil {
		return err
	}
	if r.self, err = os.Executable(); err != nil {
		return err
	}
	raiseFileLimit(s.idle)
	defer r.kids.stopAll()

	if r.bin = s.bin; r.bin == "" {
		r.bin = filepath.Join(r.work, "p2pd")
		logf("building p2pd")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", r.bin, "./cmd/p2pd")
		cmd.Dir = r.root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("building p2pd: %w\n%s", err, out)
		}
	}

	if s.compare.bin == "" && len(s.compare.env) > 0 {
		r.s.compare.bin = r.bin
	}
	r.res = &Results{
		Command: commandLine(),
		Quick:   s.quick,
		Started: r.started.UTC(),
		Machine: describeMachine(r.root),
		Settings: Settings{
			Reps: s.reps, BulkBytes: s.size, ParallelConns: s.par, WriteSize: writeSize,
			RoundTrips: s.rts, MessageSize: 64, Connects: s.connects, IdleCounts: s.idle, MaxProcs: s.maxProcs,
			Nodes: s.nodes, DiscoveryReps: s.discReps,
		},
	}
	if r.s.compare.bin != "" {
		r.res.Settings.Compare = strings.TrimSpace(r.s.compare.bin + " " + strings.Join(r.s.compare.env, " "))
	}
	if why := kuboMissing(r.s.kubo); why != "" {
		r.s.kubo = ""
		r.res.Settings.KuboMissing = why
		logf("%s", why)
	} else {
		if r.s.kubo, err = filepath.Abs(r.s.kubo); err != nil {
			return err
		}
		v, err := exec.CommandContext(ctx, r.s.kubo, "version", "--number").Output()
		if err != nil {
			return fmt.Errorf("-kubo %s: asking its version: %w", r.s.kubo, err)
		}
		r.res.Settings.Kubo = fmt.Sprintf("%s (kubo %s)", r.s.kubo, strings.TrimSpace(string(v)))
		logf("kubo: %s", r.res.Settings.Kubo)
	}
	logf("machine: %s, %d cores, %.1f GiB, load %s", r.res.Machine.CPU, r.res.Machine.Cores,
		r.res.Machine.MemoryGiB, r.res.Machine.LoadAvg)

	steps := []struct {
		section string
		fn      func(context.Context) error
	}{
		{"throughput", r.tunnels},
		{"idle", r.idleConns},
		{"startup", r.startup},
		{"discovery", r.discovery},
	}
	for _, st := range steps {
		if st.section == "throughput" && !r.wants("throughput") && !r.wants("latency") {
			continue
		}
		if st.section != "throughput" && !r.wants(st.section) {
			continue
		}
		if err := st.fn(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			logf("%s: %v", st.section, err)
			r.res.Errors = append(r.res.Errors, fmt.Sprintf("%s: %v", st.section, err))
		}
		r.kids.stopAll()
	}
	r.res.Elapsed = time.Since(r.started).Round(time.Second).String()
	return r.write()
}

// logf prints a progress line.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func commandLine() string {
	args := append([]string{"go", "run", "./bench"}, os.Args[1:]...)
	return strings.Join(args, " ")
}

// repoRoot finds the directory of the p2pd module from the working
// directory up.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/p2pd/p2pd\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run the harness inside the p2pd repository (go run ./bench)")
		}
		dir = parent
	}
}

// raiseFileLimit lifts the open-file limit for this process and the
// children it starts: each idle connection costs a descriptor in the
// client (this process), in each daemon and in the service, each of which
// has its own limit.
func raiseFileLimit(idle []int) {
	need := uint64(4096)
	for _, n := range idle {
		need = max(need, uint64(n)+2048)
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	if lim.Cur >= need {
		return
	}
	want := syscall.Rlimit{Cur: need, Max: max(need, lim.Max)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		// Not root: go as high as the hard limit allows.
		want = syscall.Rlimit{Cur: lim.Max, Max: lim.Max}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil || lim.Max < need {
			logf("warning: open-file limit %d is below the %d the idle-connection figures need", lim.Max, need)
		}
	}
}
