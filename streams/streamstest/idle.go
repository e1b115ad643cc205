package streamstest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"go.uber.org/goleak"

	"github.com/p2pd/p2pd/streams"
)

// The idle-streams test holds many streams open at once through one
// registry, checks each with an echoed byte when it opens and again once all
// are open, and closes them all cleanly.
//
// File descriptors decide its shape. A bridged stream holds one descriptor
// in its registry's process: its local TCP connection (every stream to a
// peer shares one libp2p TCP connection). The other end of that local
// connection, the client's or the service's, is one more. A tunnel with both
// registries and both ends in one process, as the other tests of the suite
// use, needs four per stream: 40,000 for 10,000 streams, and even without
// the ends its two registries need 20,000, which is the whole open-file
// limit of the machines this runs on (soft and hard, with no
// CAP_SYS_RESOURCE to raise it). Socketpairs would save nothing (two
// descriptors too), and the bridges should get what they bridge in
// production: TCP connections. So the test keeps one registry in this
// process and puts everything on its far side (the other host with a plain
// echo on its streams, the clients or the echo service) in a peer process,
// the test binary started again (see PeerMain): one descriptor per stream
// in each. It runs once for each side of a tunnel: the forward side (the
// registry bridges connections it accepts to streams it opens, as `p2pd
// forward` does) and the listen side (streams it accepts to connections it
// dials, as `p2pd listen` does).

// idleStreamsWanted is how many idle streams testIdleStreams holds open.
const idleStreamsWanted = 10000

// idleStreamsRace is how many it holds under the race detector, which
// allows 8,128 live goroutines in a process: the plain bridge runs one per
// direction of each stream, so 10,000 streams would need more than 20,000
// in this process (and the peer one per stream to echo). 1,000 also keeps
// the race run short; .ci/run runs the full count without it.
const idleStreamsRace = 1000

// idleOpeners is how many streams the peer opens at once. Each opener waits
// for its stream's first echo before it opens the next, so at most this many
// streams are being negotiated at any time: go-libp2p resets an inbound
// stream whose protocol is not negotiated within 10 s (a fixed timeout),
// which thousands of streams opened at once overrun on a busy machine.
const idleOpeners = 64

// fdSlack is how many file descriptors a process of the test holds besides
// the streams' (its host, listeners, the runtime's).
const fdSlack = 1024

// fdMargin is how many more file descriptors than streams the streams
// may hold in the registry's process (a poller, a host's new connection).
const fdMargin = 100

// peerTimeout bounds every step of the peer; it only guards against hangs.
const peerTimeout = 5 * time.Minute

// The sides of a tunnel the registry under test plays.
const (
	sideForward = "forward" // bridges connections it accepts to streams it opens
	sideListen  = "listen"  // bridges streams it accepts to connections it dials
)

// openByte and pingByte are what the peer sends on stream i when it opens
// and once all are open.
func openByte(i int) byte { return byte(i*7 + 3) }
func pingByte(i int) byte { return ^byte(i * 13) }

// sumOfBytes is the SHA-256 of f(0) … f(n-1).
func sumOfBytes(n int, f func(int) byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = f(i)
	}
	s := sha256.Sum256(b)
	return s[:]
}

// testIdleStreams holds many idle streams open through a registry, on each
// side of a tunnel in turn (see above).
func testIdleStreams(t *testing.T, cfg Config) {
	n := idleStreamsWanted
	if raceEnabled {
		n = idleStreamsRace
		t.Logf("%d idle streams under the race detector (its limit of 8,128 goroutines); %d without it", n, idleStreamsWanted)
	}
	for _, side := range []string{sideForward, sideListen} {
		t.Run(side+" side", func(t *testing.T) { idleStreams(t, cfg, side, n) })
	}
}

// idleStreams runs the test with the registry on side of the tunnel.
func idleStreams(t *testing.T, cfg Config, side string, n int) {
	ignore := goleak.IgnoreCurrent()
	need := n + fdSlack
	if got, err := raiseFileLimit(need); got < need {
		t.Skipf("%d idle streams need an open-file limit of %d (one descriptor per stream in this process and in its peer, %d for the rest); the limit is %d and raising it failed: %v",
			n, need, fdSlack, got, err)
	}

	hooks := NewHookLog()
	opts := hooks.options()
	if cfg.Opts != nil {
		opts = append(opts, cfg.Opts()...)
	}
	reg, err := streams.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	h := NewHost(t)
	var ln net.Listener // forward side: where the peer's clients dial
	var wg sync.WaitGroup
	var shutOnce sync.Once
	shut := func() {
		shutOnce.Do(func() {
			if ln != nil {
				_ = ln.Close()
			}
			_ = reg.Close()
			_ = h.Close()
			wg.Wait()
		})
	}
	t.Cleanup(shut)
	if side == sideForward {
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}

	p := startPeer(t)
	start := peerCmd{Do: "start", Side: side, N: n, Host: &peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}}
	if ln != nil {
		start.Listen = ln.Addr().String()
	}
	far := p.call(t, start)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := h.Connect(ctx, *far.Host); err != nil {
		t.Fatalf("connecting to the peer: %v", err)
	}

	switch side {
	case sideForward:
		target := P2PAddr(t, far.Host.ID)
		acceptLoop(ln, &wg, func(c net.Conn) { forward(h, far.Host.ID, reg, c, target) })
	case sideListen:
		svc, err := ma.NewMultiaddr(far.Service)
		if err != nil {
			t.Fatalf("the peer's service address %q: %v", far.Service, err)
		}
		svcAddr, err := manet.ToNetAddr(svc)
		if err != nil {
			t.Fatal(err)
		}
		origin := P2PAddr(t, far.Host.ID)
		h.SetStreamHandler(Proto, func(s network.Stream) {
			c, err := net.DialTimeout("tcp", svcAddr.String(), time.Minute)
			if err != nil {
				_ = s.Reset() // the peer's echo fails and names its stream
				return
			}
			_, _ = reg.Bridge(s, c, origin, svc)
		})
	}

	fdsBefore := openFiles()
	if got := p.call(t, peerCmd{Do: "open"}).Sum; !bytes.Equal(got, sumOfBytes(n, openByte)) {
		t.Fatal("the bytes echoed when the streams opened differ from those sent")
	}
	WaitFor(t, fmt.Sprintf("%d streams in the registry", n), func() bool { return reg.Len() == n })
	if fdsBefore > 0 {
		// One descriptor per stream (its local connection) is what lets
		// 10,000 fit; a bridge holding more (a pipe, a dup) would not.
		more := openFiles() - fdsBefore
		t.Logf("%d idle streams open on the %s side; this process holds %.2f more file descriptors per stream",
			n, side, float64(more)/float64(n))
		if more > n+fdMargin {
			t.Errorf("%d streams hold %d file descriptors, want at most one each (%d for other things)", n, more, fdMargin)
		}
	}
	if opened, _ := hooks.Snapshot(); len(opened) != n {
		t.Fatalf("%d OnOpen calls, want %d", len(opened), n)
	}

	// Every stream carries data again once all are open.
	if got := p.call(t, peerCmd{Do: "ping"}).Sum; !bytes.Equal(got, sumOfBytes(n, pingByte)) {
		t.Fatal("the bytes echoed once all streams were open differ from those sent")
	}
	if got := reg.Len(); got != n {
		t.Fatalf("%d streams in the registry after the second echo, want %d", got, n)
	}

	// The peer half-closes every stream and reads its end: each bridge
	// passes both ends on and finishes cleanly.
	p.call(t, peerCmd{Do: "close"})
	WaitFor(t, "the registry to empty", func() bool { return reg.Len() == 0 })
	opened, closed := hooks.Snapshot()
	if len(opened) != n || len(closed) != n {
		t.Fatalf("%d OnOpen and %d OnClose calls, want %d each", len(opened), len(closed), n)
	}
	bad := 0
	for _, ev := range closed {
		if ev.Err != nil || ev.Info.BytesIn != 2 || ev.Info.BytesOut != 2 {
			if bad++; bad <= 3 {
				t.Errorf("stream %d ended with in=%d out=%d err=%v, want 2, 2 and a clean end", ev.Info.ID, ev.Info.BytesIn, ev.Info.BytesOut, ev.Err)
			}
		}
	}
	if bad > 3 {
		t.Errorf("… and %d more streams like that", bad-3)
	}
	if err := p.stop(t); err != nil {
		t.Fatalf("the peer did not exit cleanly: %v", err)
	}
	shut()
	goleak.VerifyNone(t, ignore)
}

// openFiles counts the open file descriptors of the process (-1 if unknown).
func openFiles() int {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(fds)
}

// raiseFileLimit raises the open-file limit of the process to want, the hard
// limit too if need be (which takes CAP_SYS_RESOURCE, and goes up to
// fs.nr_open). It returns the limit in force and why it could not raise it.
func raiseFileLimit(want int) (int, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("getrlimit: %w", err)
	}
	if lim.Cur >= uint64(want) {
		return int(lim.Cur), nil
	}
	raised := syscall.Rlimit{Cur: uint64(want), Max: max(lim.Max, uint64(want))}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
		return int(lim.Cur), fmt.Errorf("setrlimit to %d (hard limit %d): %w", want, lim.Max, err)
	}
	return want, nil
}

// peerEnv, set to 1, makes PeerMain run the process as the peer.
const peerEnv = "P2PD_STREAMSTEST_PEER"

// peerCmd is a command of the test to its peer process, one JSON line on the
// peer's standard input.
type peerCmd struct {
	Do     string         // start, open, ping or close
	Side   string         // start: the side the registry under test plays
	N      int            // start: how many streams
	Host   *peer.AddrInfo `json:",omitempty"` // start: the host of the registry under test
	Listen string         // start, forward side: where the peer's clients dial
}

// peerReply is the peer's answer to a command, one JSON line on its
// standard output.
type peerReply struct {
	Err     string         `json:",omitempty"`
	Host    *peer.AddrInfo `json:",omitempty"` // start: the peer's host
	Service string         `json:",omitempty"` // start, listen side: the echo service's multiaddr
	Sum     []byte         `json:",omitempty"` // open, ping: SHA-256 of the bytes echoed, in stream order
}

// peerProc is the peer process, as the test sees it.
type peerProc struct {
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	enc      *json.Encoder
	replies  chan peerReply // closed when the peer's output ends
	stderr   bytes.Buffer   // written by exec's goroutine until Wait returns
	stopOnce sync.Once
	err      error // of Wait
}

// startPeer starts the test binary again as the peer. It runs no tests
// (-test.run=^$) even if its TestMain forgot PeerMain.
func startPeer(t *testing.T) *peerProc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("finding the test binary: %v", err)
	}
	p := &peerProc{replies: make(chan peerReply, 1)}
	p.cmd = exec.Command(exe, "-test.run=^$")
	p.cmd.Env = append(os.Environ(), peerEnv+"=1")
	p.cmd.Stderr = &p.stderr
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.enc = json.NewEncoder(p.stdin)
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting the peer process: %v", err)
	}
	go func() {
		defer close(p.replies)
		dec := json.NewDecoder(stdout)
		for {
			var r peerReply
			if err := dec.Decode(&r); err != nil {
				_, _ = io.Copy(io.Discard, stdout) // until the peer exits
				return
			}
			p.replies <- r
		}
	}()
	t.Cleanup(func() { _ = p.stop(t) })
	return p
}

// call sends cmd to the peer and returns its answer; it fails the test if
// the peer reports an error, exits or does not answer.
func (p *peerProc) call(t *testing.T, cmd peerCmd) peerReply {
	t.Helper()
	if err := p.enc.Encode(cmd); err != nil {
		t.Fatalf("sending %q to the peer: %v", cmd.Do, err)
	}
	select {
	case r, ok := <-p.replies:
		switch {
		case !ok:
			t.Fatalf("the peer exited without answering %q (its output ended)", cmd.Do)
		case r.Err != "":
			t.Fatalf("peer, %s: %s", cmd.Do, r.Err)
		}
		return r
	case <-time.After(peerTimeout):
		t.Fatalf("the peer did not answer %q within %v", cmd.Do, peerTimeout)
	}
	return peerReply{}
}

// stop ends the peer's input, which makes it close everything and exit,
// and waits for it; it kills the peer if the test failed or the peer does
// not exit. It returns the error of its exit.
func (p *peerProc) stop(t *testing.T) error {
	p.stopOnce.Do(func() {
		_ = p.stdin.Close()
		if t.Failed() {
			_ = p.cmd.Process.Kill()
		}
		kill := time.AfterFunc(time.Minute, func() { _ = p.cmd.Process.Kill() })
		for range p.replies { // until its output ends
		}
		p.err = p.cmd.Wait()
		kill.Stop()
		if s := p.stderr.String(); s != "" {
			t.Logf("the peer's standard error:\n%s", s)
		}
	})
	return p.err
}

// PeerMain makes this process the peer of the idle-streams test when the
// test started it as one (it then exits), and returns at once otherwise.
// Call it first in the TestMain of every package that runs the suite.
func PeerMain() {
	if os.Getenv(peerEnv) != "1" {
		return
	}
	if err := runPeer(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "streamstest peer: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// peerEnd is one stream's end in the peer: a client's TCP connection
// (forward side) or a libp2p stream (listen side).
type peerEnd interface {
	io.ReadWriteCloser
	CloseWrite() error
	SetDeadline(time.Time) error
}

// idlePeer is the peer process's state.
type idlePeer struct {
	side   string
	n      int
	target peer.ID // the host of the registry under test
	listen string  // forward side: where clients dial
	h      host.Host
	svc    net.Listener // listen side: the echo service
	ends   []peerEnd
	wg     sync.WaitGroup // the echo service and its handlers
}

// runPeer answers the commands read from in on out until in ends, then
// closes everything.
func runPeer(in io.Reader, out io.Writer) error {
	dec, enc := json.NewDecoder(in), json.NewEncoder(out)
	p := &idlePeer{}
	defer p.close()
	for {
		var cmd peerCmd
		if err := dec.Decode(&cmd); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("reading a command: %w", err)
		}
		reply, err := p.do(cmd)
		if err != nil {
			reply.Err = err.Error()
		}
		if err := enc.Encode(reply); err != nil {
			return fmt.Errorf("answering %q: %w", cmd.Do, err)
		}
	}
}

func (p *idlePeer) do(cmd peerCmd) (peerReply, error) {
	switch cmd.Do {
	case "start":
		return p.start(cmd)
	case "open":
		sum, err := p.echoAll(func(i int) byte { return openByte(i) }, true)
		return peerReply{Sum: sum}, err
	case "ping":
		sum, err := p.echoAll(func(i int) byte { return pingByte(i) }, false)
		return peerReply{Sum: sum}, err
	case "close":
		return peerReply{}, p.each(func(i int) error {
			e := p.ends[i]
			_ = e.SetDeadline(time.Now().Add(peerTimeout))
			if err := e.CloseWrite(); err != nil {
				return fmt.Errorf("stream %d: half-closing: %w", i, err)
			}
			if b, err := io.ReadAll(e); err != nil || len(b) != 0 {
				return fmt.Errorf("stream %d: after half-closing read %d bytes and %v, want a clean end", i, len(b), err)
			}
			p.ends[i] = nil
			return e.Close()
		})
	}
	return peerReply{}, fmt.Errorf("unknown command %q", cmd.Do)
}

// start builds the peer's host and, on the listen side, its echo service,
// and connects to the host of the registry under test.
func (p *idlePeer) start(cmd peerCmd) (peerReply, error) {
	if p.h != nil || cmd.Host == nil {
		return peerReply{}, errors.New("start: started twice, or without the test's host")
	}
	if got, err := raiseFileLimit(cmd.N + fdSlack); got < cmd.N+fdSlack {
		return peerReply{}, fmt.Errorf("the peer's open-file limit is %d, %d streams need %d: %v", got, cmd.N, cmd.N+fdSlack, err)
	}
	p.side, p.n, p.target, p.listen = cmd.Side, cmd.N, cmd.Host.ID, cmd.Listen
	p.ends = make([]peerEnd, cmd.N)
	var err error
	if p.h, err = newHost(); err != nil {
		return peerReply{}, err
	}
	var reply peerReply
	switch cmd.Side {
	case sideForward:
		// A plain echo on every stream, which ends it when its data ends.
		p.h.SetStreamHandler(Proto, func(s network.Stream) {
			if err := smallEcho(s); err != nil {
				_ = s.Reset()
				return
			}
			_ = s.Close()
		})
	case sideListen:
		if p.svc, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return peerReply{}, err
		}
		svc, err := manet.FromNetAddr(p.svc.Addr())
		if err != nil {
			return peerReply{}, err
		}
		reply.Service = svc.String()
		acceptLoop(p.svc, &p.wg, func(c net.Conn) {
			defer c.Close()
			if smallEcho(c) == nil {
				_ = c.(*net.TCPConn).CloseWrite()
				_, _ = c.Read(make([]byte, 1)) // until the bridge closes
			}
		})
	default:
		return peerReply{}, fmt.Errorf("unknown side %q", cmd.Side)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.h.Connect(ctx, *cmd.Host); err != nil {
		return peerReply{}, fmt.Errorf("connecting to the test's host: %w", err)
	}
	reply.Host = &peer.AddrInfo{ID: p.h.ID(), Addrs: p.h.Addrs()}
	return reply, nil
}

// open opens the end of a new stream through the registry under test.
func (p *idlePeer) open() (peerEnd, error) {
	if p.side == sideForward {
		c, err := net.DialTimeout("tcp", p.listen, time.Minute)
		if err != nil {
			return nil, err
		}
		return c.(*net.TCPConn), nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return p.h.NewStream(ctx, p.target, Proto)
}

// echoAll sends b(i) on every stream i, opening it first if asked, and
// checks that it comes back; it returns the SHA-256 of what came back.
func (p *idlePeer) echoAll(b func(int) byte, open bool) ([]byte, error) {
	got := make([]byte, p.n)
	err := p.each(func(i int) error {
		if open {
			e, err := p.open()
			if err != nil {
				return fmt.Errorf("opening stream %d: %w", i, err)
			}
			p.ends[i] = e
		}
		e := p.ends[i]
		_ = e.SetDeadline(time.Now().Add(peerTimeout))
		defer e.SetDeadline(time.Time{})
		if _, err := e.Write([]byte{b(i)}); err != nil {
			return fmt.Errorf("stream %d: writing: %w", i, err)
		}
		if _, err := io.ReadFull(e, got[i:i+1]); err != nil {
			return fmt.Errorf("stream %d: reading the echo: %w", i, err)
		}
		if got[i] != b(i) {
			return fmt.Errorf("stream %d: echoed %#x, want %#x", i, got[i], b(i))
		}
		return nil
	})
	s := sha256.Sum256(got)
	return s[:], err
}

// each runs f for every stream, idleOpeners at a time, and returns the
// first error (the others stop at their next stream).
func (p *idlePeer) each(f func(i int) error) error {
	next := make(chan int)
	errs := make(chan error, idleOpeners)
	var wg sync.WaitGroup
	for range idleOpeners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var first error
feed:
	for i := range p.n {
		select {
		case next <- i:
		case first = <-errs:
			break feed
		}
	}
	close(next)
	wg.Wait()
	if first == nil {
		select {
		case first = <-errs:
		default:
		}
	}
	return first
}

// smallEcho copies what rw reads back to it until the end of its data.
// Unlike io.Copy it holds a small buffer (io.Copy takes 32 KiB, 320 MiB for
// 10,000 streams) and no pipe (io.Copy between TCP connections splices
// through a pipe: two more descriptors per stream).
func smallEcho(rw io.ReadWriter) error {
	buf := make([]byte, 64)
	for {
		n, err := rw.Read(buf)
		if n > 0 {
			if _, err := rw.Write(buf[:n]); err != nil {
				return err
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// close closes every end, the service and the host.
func (p *idlePeer) close() {
	for _, e := range p.ends {
		if e != nil {
			_ = e.Close()
		}
	}
	if p.svc != nil {
		_ = p.svc.Close()
	}
	if p.h != nil {
		_ = p.h.Close()
	}
	p.wg.Wait()
}
