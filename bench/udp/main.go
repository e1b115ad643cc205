// Command udp measures p2pd's UDP tunnels against direct loopback UDP: for
// 64-byte and 1,200-byte datagrams sent at rising rates, how many arrive per
// second and how many are lost, through a forward and listen over TCP, the
// same over QUIC, and straight to the receiving socket. The paths alternate
// at every rate, so each ratio is taken within one run of a shared machine.
//
// Usage, from the repository root:
//
//	go run ./bench/udp                 # prints a Markdown table
//	go run ./bench/udp -dur 1s -rates 10000,50000
//
// It builds p2pd (or runs -bin), starts three daemons on 127.0.0.1 as
// separate processes (one listen, one forward over TCP, one over QUIC), and
// sends from one client socket (one flow) to a counting sink in this
// process. No figure is pass/fail.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/p2pd/p2pd/api"
	"github.com/p2pd/p2pd/internal/childproc"
	"github.com/p2pd/p2pd/udpflow"
)

// socketBuffer is asked for the sender's and the sink's sockets, as the
// daemons ask for theirs.
const socketBuffer = udpflow.DefaultSocketBuffer

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/udp:", err)
		os.Exit(1)
	}
}

type settings struct {
	bin   string
	dur   time.Duration
	rates []int
	sizes []int
}

func parseFlags() (settings, error) {
	var s settings
	var rates, sizes string
	flag.StringVar(&s.bin, "bin", "", "p2pd binary to run (default: build ./cmd/p2pd)")
	flag.DurationVar(&s.dur, "dur", 2*time.Second, "how long each rate is sent")
	flag.StringVar(&rates, "rates", "5000,10000,20000,40000,80000,160000,0", "send rates in datagrams per second, 0 for as fast as the sender can")
	flag.StringVar(&sizes, "sizes", "64,1200", "datagram sizes in bytes")
	flag.Parse()
	var err error
	if s.rates, err = ints(rates); err != nil {
		return s, fmt.Errorf("-rates: %w", err)
	}
	if s.sizes, err = ints(sizes); err != nil {
		return s, fmt.Errorf("-sizes: %w", err)
	}
	return s, nil
}

func ints(list string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%q is not a non-negative number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// path is one way from the sender to the sink.
type path struct {
	name string
	addr string // where the sender sends
	via  *daemon
}

func run() error {
	s, err := parseFlags()
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "p2pd-udp-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if s.bin == "" {
		s.bin = filepath.Join(work, "p2pd")
		build := exec.Command("go", "build", "-o", s.bin, "./cmd/p2pd")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("building p2pd: %w", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	sink, err := newSink()
	if err != nil {
		return err
	}
	defer sink.close()

	listenD, err := startDaemon(ctx, s.bin, work, "listen", "/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1")
	if err != nil {
		return err
	}
	defer listenD.stop()
	if _, err := listenD.cli("listen", "/x/udpbench", sink.addr()+"/udp"); err != nil {
		return err
	}
	paths := []path{{name: "direct", addr: sink.addr()}}
	for _, tr := range []string{"tcp", "quic-v1"} {
		d, err := startDaemon(ctx, s.bin, work, "forward-"+tr, "/ip4/127.0.0.1/tcp/0")
		if err != nil {
			return err
		}
		defer d.stop()
		target := listenD.addrWith("/" + tr)
		if target == "" {
			return fmt.Errorf("the listening daemon has no %s address", tr)
		}
		out, err := d.cli("forward", "/x/udpbench", "udp:0", target)
		if err != nil {
			return err
		}
		var l api.Listener
		if err := json.Unmarshal(out, &l); err != nil {
			return fmt.Errorf("forward answered %q: %w", out, err)
		}
		parts := strings.Split(l.ListenAddress, "/")
		paths = append(paths, path{name: "p2pd over " + strings.TrimSuffix(tr, "-v1"), addr: net.JoinHostPort(parts[2], parts[4]), via: d})
	}

	fmt.Printf("Command: `%s`, %s, %d cores, %s.\n\n", strings.Join(append([]string{"go run ./bench/udp"}, os.Args[1:]...), " "),
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.NumCPU(), loadAvg())
	fmt.Println("| size | offered rate | path | sent/s | received/s | loss | dropped by p2pd | received ÷ direct |")
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, size := range s.sizes {
		senders := map[string]*net.UDPConn{}
		for _, p := range paths {
			c, err := dialSender(p.addr)
			if err != nil {
				return err
			}
			defer c.Close()
			senders[p.name] = c
			// Start the flow so that opening its stream is not measured.
			if err := warmUp(c, sink); err != nil {
				return fmt.Errorf("%s: %w", p.name, err)
			}
		}
		for _, rate := range s.rates {
			var direct float64
			for _, p := range paths {
				before := p.via.dropped() + listenD.dropped()
				r := trial(senders[p.name], sink, size, rate, s.dur)
				if p.via != nil {
					r.dropped = p.via.dropped() + listenD.dropped() - before
				}
				if p.name == "direct" {
					direct = r.recvRate
				}
				offered := "max"
				if rate > 0 {
					offered = strconv.Itoa(rate) + "/s"
				}
				fmt.Printf("| %d B | %s | %s | %.0f | %.0f | %.2f%% | %d | %.2f× |\n", size, offered, p.name,
					r.sendRate, r.recvRate, 100*r.loss(), r.dropped, r.recvRate/direct)
			}
		}
	}
	return nil
}

// result is one trial.
type result struct {
	sent, received     int64
	sendRate, recvRate float64
	dropped            int64
}

func (r result) loss() float64 {
	if r.sent == 0 {
		return 0
	}
	return 1 - float64(r.received)/float64(r.sent)
}

// trial sends size-byte datagrams on c at rate per second (0: as fast as it
// can) for dur and counts what the sink gets, waiting for the stragglers.
func trial(c *net.UDPConn, s *sink, size, rate int, dur time.Duration) result {
	buf := make([]byte, size)
	s.reset()
	start := time.Now()
	var sent int64
	const tick = time.Millisecond
	for next := start; time.Since(start) < dur; {
		batch := 256
		if rate > 0 {
			// Send what is due by now: the pacing catches up after a
			// late wake-up instead of losing the time.
			due := int64(float64(rate) * time.Since(start).Seconds())
			batch = int(due - sent)
			if batch <= 0 {
				next = next.Add(tick)
				time.Sleep(time.Until(next))
				continue
			}
		}
		for range batch {
			if _, err := c.Write(buf); err == nil {
				sent++
			}
		}
	}
	elapsed := time.Since(start)
	received := s.settle()
	return result{sent: sent, received: received, sendRate: float64(sent) / elapsed.Seconds(),
		recvRate: float64(received) / elapsed.Seconds()}
}

func dialSender(addr string) (*net.UDPConn, error) {
	ra, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		return nil, err
	}
	c, err := net.DialUDP("udp4", nil, ra)
	if err != nil {
		return nil, err
	}
	udpflow.SetBuffers(c, socketBuffer)
	return c, nil
}

// warmUp sends until the sink gets a datagram through c.
func warmUp(c *net.UDPConn, s *sink) error {
	s.reset()
	for range 100 {
		if _, err := c.Write([]byte("warm-up")); err != nil {
			return err
		}
		time.Sleep(50 * time.Millisecond)
		if s.count.Load() > 0 {
			s.settle()
			return nil
		}
	}
	return errors.New("no datagram reached the sink in 5 s")
}

// sink counts the datagrams it receives.
type sink struct {
	pc    *net.UDPConn
	count atomic.Int64
	done  chan struct{}
}

func newSink() (*sink, error) {
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	udpflow.SetBuffers(pc, socketBuffer)
	s := &sink{pc: pc, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		buf := make([]byte, 1<<16)
		for {
			if _, err := pc.Read(buf); err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			s.count.Add(1)
		}
	}()
	return s, nil
}

func (s *sink) addr() string { return s.pc.LocalAddr().String() }

func (s *sink) reset() { s.count.Store(0) }

// settle waits until nothing arrived for 300 ms and returns the count.
func (s *sink) settle() int64 {
	last := s.count.Load()
	for {
		time.Sleep(300 * time.Millisecond)
		n := s.count.Load()
		if n == last {
			return n
		}
		last = n
	}
}

func (s *sink) close() {
	s.pc.Close()
	<-s.done
}

// daemon is a running `p2pd daemon`.
type daemon struct {
	bin, repo string
	cmd       *exec.Cmd
	addrs     []string
}

func startDaemon(ctx context.Context, bin, work, name string, listen ...string) (*daemon, error) {
	d := &daemon{bin: bin, repo: filepath.Join(work, name)}
	args := []string{"daemon", "--repo", d.repo, "--api", "/ip4/127.0.0.1/tcp/0", "--bootstrap", "none",
		"--dht", "off", "--mdns=false"}
	for _, l := range listen {
		args = append(args, "--listen", l)
	}
	d.cmd = exec.CommandContext(ctx, bin, args...)
	d.cmd.SysProcAttr = childproc.Attr(true)
	d.cmd.Stderr = os.Stderr
	out, err := d.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting daemon %s: %w", name, err)
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if a, ok := strings.CutPrefix(line, "listening on: "); ok {
			d.addrs = append(d.addrs, a)
		}
		if strings.HasPrefix(line, "api: ") {
			go func() { _, _ = io.Copy(io.Discard, out) }()
			return d, nil
		}
	}
	d.stop()
	return nil, fmt.Errorf("daemon %s exited before it was ready", name)
}

// addrWith returns the daemon's first address containing part.
func (d *daemon) addrWith(part string) string {
	for _, a := range d.addrs {
		if strings.Contains(a, part) {
			return a
		}
	}
	return ""
}

func (d *daemon) cli(args ...string) ([]byte, error) {
	cmd := exec.Command(d.bin, append(args, "--repo", d.repo, "--json")...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("p2pd %s: %w", strings.Join(args, " "), err)
	}
	return out, nil
}

// dropped sums the drops of the daemon's flows (0 for the direct path).
func (d *daemon) dropped() int64 {
	if d == nil {
		return 0
	}
	out, err := d.cli("streams")
	if err != nil {
		return 0
	}
	var ss []api.Stream
	if json.Unmarshal(out, &ss) != nil {
		return 0
	}
	var n int64
	for _, s := range ss {
		if s.Dropped != nil {
			n += int64(*s.Dropped)
		}
	}
	return n
}

func (d *daemon) stop() {
	if d.cmd.Process != nil {
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		_ = d.cmd.Wait()
	}
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "load average unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "load average unknown"
	}
	return "load average at start " + strings.Join(f[:3], " ")
}
