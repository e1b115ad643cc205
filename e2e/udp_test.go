package e2e

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/p2pd/p2pd/api"
	"github.com/p2pd/p2pd/udpflow"
)

// udpSocketBuffer is asked for every test socket, as the daemons ask for
// theirs (past net.core.rmem_max when root): a burst of 60 KiB datagrams
// must fit while a process waits for a CPU.
const udpSocketBuffer = udpflow.DefaultSocketBuffer

// udpReplyTimeout is how long a client waits for an echo before it calls the
// datagram lost: a bound against hanging, never a measure of speed.
const udpReplyTimeout = 30 * time.Second

// udpService is a UDP server in the test process that answers each
// datagram with reply(datagram), or not at all when reply returns nil.
type udpService struct {
	pc *net.UDPConn
	wg sync.WaitGroup

	mu      sync.Mutex // guards sources
	sources map[string]bool
}

func startUDPService(t testing.TB, reply func([]byte) []byte) *udpService {
	t.Helper()
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	udpflow.SetBuffers(pc, udpSocketBuffer)
	s := &udpService{pc: pc, sources: map[string]bool{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		buf := make([]byte, 1<<16)
		for {
			n, from, err := pc.ReadFromUDP(buf)
			if err != nil {
				return
			}
			s.mu.Lock()
			s.sources[from.String()] = true
			s.mu.Unlock()
			if out := reply(buf[:n]); out != nil {
				_, _ = pc.WriteToUDP(out, from)
			}
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		s.wg.Wait()
	})
	return s
}

// short is the service's address in the short form 127.0.0.1:PORT/udp.
func (s *udpService) short() string {
	return s.pc.LocalAddr().String() + "/udp"
}

func (s *udpService) sourceCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sources)
}

// udpTunnel makes b serve proto by sending to the UDP service at target and
// a forward a fresh local UDP port to it (given as udp:0); it returns the
// forward's host:port.
func udpTunnel(t *testing.T, a, b *node, proto, target string) string {
	t.Helper()
	var l api.Listener
	b.mustJSON(&l, "listen", proto, target)
	if !strings.Contains(l.TargetAddress, "/udp/") {
		t.Fatalf("listen target %q, want a /udp/ address", l.TargetAddress)
	}
	var f api.Listener
	a.mustJSON(&f, "forward", proto, "udp:0", b.addr())
	parts := strings.Split(f.ListenAddress, "/")
	if len(parts) != 5 || parts[1] != "ip4" || parts[3] != "udp" || parts[4] == "0" {
		t.Fatalf("forward listen address %q, want /ip4/127.0.0.1/udp/PORT", f.ListenAddress)
	}
	return net.JoinHostPort(parts[2], parts[4])
}

// udpDial opens a client socket to a forward.
func udpDial(t testing.TB, addr string) *net.UDPConn {
	t.Helper()
	raddr, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp4", nil, raddr)
	if err != nil {
		t.Fatal(err)
	}
	udpflow.SetBuffers(c, udpSocketBuffer)
	t.Cleanup(func() { c.Close() })
	return c
}

// mixedSize is the size of datagram seq of a client: mostly up to a
// typical MTU, every 16th up to 60 KiB, and the extremes 1 B and 60 KiB.
func mixedSize(client, seq int) int {
	x := uint32(client*7919 + seq*104729)
	x ^= x << 13
	x ^= x >> 17
	x ^= x << 5
	switch {
	case seq == 0:
		return 1
	case seq == 1:
		return 60 << 10
	case seq%16 == 0:
		return 1 + int(x%(60<<10))
	}
	return 1 + int(x%1472)
}

// fillDatagram fills b with bytes that tell client and seq apart.
func fillDatagram(b []byte, client, seq int) {
	var h [8]byte
	binary.BigEndian.PutUint32(h[:4], uint32(client))
	binary.BigEndian.PutUint32(h[4:], uint32(seq))
	for i := range b {
		b[i] = h[i%8] ^ byte(i*131)
	}
}

// udpEchoClient sends count datagrams of mixed sizes on c, with at most
// window unanswered, and checks that each echo is the datagram sent,
// whole, in order. It returns the SHA-256 of what it sent and of what came
// back.
func udpEchoClient(c *net.UDPConn, client, count, window int) (sent, got [32]byte, err error) {
	hs, hr := sha256.New(), sha256.New()
	var (
		mu       sync.Mutex
		inflight [][]byte // sent, not yet echoed, in order
	)
	slots := make(chan struct{}, window)
	recvErr := make(chan error, 1)
	go func() {
		recvErr <- udpEchoReceive(c, count, hr, func() []byte {
			mu.Lock()
			defer mu.Unlock()
			d := inflight[0]
			inflight = inflight[1:]
			return d
		}, slots)
	}()
	for seq := range count {
		select {
		case slots <- struct{}{}:
		case err := <-recvErr:
			return sent, got, fmt.Errorf("client %d stopped after %d datagrams: %w", client, seq, err)
		}
		d := make([]byte, mixedSize(client, seq))
		fillDatagram(d, client, seq)
		mu.Lock()
		inflight = append(inflight, d)
		mu.Unlock()
		hs.Write(d)
		if _, err := c.Write(d); err != nil {
			return sent, got, fmt.Errorf("client %d sending datagram %d: %w", client, seq, err)
		}
	}
	if err := <-recvErr; err != nil {
		return sent, got, fmt.Errorf("client %d: %w", client, err)
	}
	return [32]byte(hs.Sum(nil)), [32]byte(hr.Sum(nil)), nil
}

// udpEchoReceive reads count echoes on c; each must equal next(), the
// oldest datagram in flight.
func udpEchoReceive(c *net.UDPConn, count int, h hash.Hash, next func() []byte, slots chan struct{}) error {
	buf := make([]byte, 1<<16)
	for seq := range count {
		_ = c.SetReadDeadline(time.Now().Add(udpReplyTimeout))
		n, err := c.Read(buf)
		if err != nil {
			return fmt.Errorf("datagram %d lost (no echo): %w", seq, err)
		}
		want := next()
		if !bytes.Equal(buf[:n], want) {
			return fmt.Errorf("echo %d: got %d bytes, want the %d-byte datagram sent (merged, split or another's)", seq, n, len(want))
		}
		h.Write(buf[:n])
		<-slots
	}
	return nil
}

// TestUDPEchoTenThousandDatagrams sends 10,000 datagrams of 1 B to 60 KiB
// from 8 client sockets through a UDP forward and listen to an echo
// service: every echo comes back whole to its own client, none lost.
func TestUDPEchoTenThousandDatagrams(t *testing.T) {
	a, b := pair(t)
	svc := startUDPService(t, func(d []byte) []byte { return d })
	addr := udpTunnel(t, a, b, "/x/uecho", svc.short())

	const clients, perClient = 8, 1250
	// Paced by the echoes: at most window datagrams of a client are on
	// their way, so the sockets' buffers always hold a whole burst (8 x 4
	// x 60 KiB at worst) however long a process waits for a CPU.
	const window = 4
	errs := make(chan error, clients)
	for i := range clients {
		c := udpDial(t, addr)
		go func() {
			sent, got, err := udpEchoClient(c, i, perClient, window)
			if err == nil && sent != got {
				err = fmt.Errorf("client %d: SHA-256 of the echoes differs from what it sent", i)
			}
			errs <- err
		}()
	}
	for range clients {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if t.Failed() {
		return
	}
	if n := svc.sourceCount(); n != clients {
		t.Errorf("the service saw %d source addresses, want %d (one socket per flow)", n, clients)
	}
	for _, n := range []*node{a, b} {
		eventually(t, 30*time.Second, func() error {
			var ss []api.Stream
			n.mustJSON(&ss, "streams")
			if len(ss) != clients {
				return fmt.Errorf("%d streams, want %d flows", len(ss), clients)
			}
			for _, s := range ss {
				if s.DatagramsIn == nil || *s.DatagramsIn != perClient || *s.DatagramsOut != perClient || *s.Dropped != 0 {
					return fmt.Errorf("flow %+v: want %d datagrams each way and none dropped", s, perClient)
				}
			}
			return nil
		})
	}
	// Text: ID PROTOCOL ORIGIN TARGET, then the flow's counts.
	r := a.cli("streams")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	want := fmt.Sprintf(" datagrams in %d out %d dropped 0", perClient, perClient)
	if len(lines) != clients || !strings.HasSuffix(lines[0], want) || !strings.Contains(lines[0], "/x/uecho/p2pd-udp/1 /ip4/127.0.0.1/udp/") {
		t.Errorf("streams text, want %d lines like \"ID /x/uecho/p2pd-udp/1 /ip4/127.0.0.1/udp/PORT /p2p/ID%s\":\n%s", clients, want, r.stdout)
	}
}

// dnsQuery builds a standard query for name, type A, class IN.
func dnsQuery(id uint16, name string) []byte {
	q := binary.BigEndian.AppendUint16(nil, id)
	q = append(q, 0x01, 0x00)             // recursion desired
	q = append(q, 0, 1, 0, 0, 0, 0, 0, 0) // 1 question
	for _, label := range strings.Split(name, ".") {
		q = append(q, byte(len(label)))
		q = append(q, label...)
	}
	return append(q, 0, 0, 1, 0, 1) // root, type A, class IN
}

// dnsAnswer answers a query for an A record with addr, or returns nil for
// anything else.
func dnsAnswer(q []byte, addr [4]byte) []byte {
	if len(q) < 12 || binary.BigEndian.Uint16(q[4:]) != 1 {
		return nil
	}
	end := 12
	for end < len(q) && q[end] != 0 {
		end += 1 + int(q[end])
	}
	if end+5 > len(q) {
		return nil
	}
	question := q[12 : end+5]
	r := append([]byte{}, q[:2]...)
	r = append(r, 0x81, 0x80)             // response, recursion desired and available, no error
	r = append(r, 0, 1, 0, 1, 0, 0, 0, 0) // 1 question, 1 answer
	r = append(r, question...)
	r = append(r, 0xc0, 12)                           // the name: a pointer to the question's
	r = append(r, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4) // A, IN, TTL 3600, 4 bytes
	return append(r, addr[:]...)
}

// TestUDPDNSThroughTunnel resolves a name through a UDP tunnel to a DNS
// server (built here from the wire format) and checks the answer.
func TestUDPDNSThroughTunnel(t *testing.T) {
	a, b := pair(t)
	want := [4]byte{192, 0, 2, 53}
	svc := startUDPService(t, func(q []byte) []byte { return dnsAnswer(q, want) })
	addr := udpTunnel(t, a, b, "/x/dns", svc.short())

	c := udpDial(t, addr)
	q := dnsQuery(0x5eed, "printer.lan")
	if _, err := c.Write(q); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 512)
	_ = c.SetReadDeadline(time.Now().Add(udpReplyTimeout))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no DNS answer: %v", err)
	}
	r := buf[:n]
	switch {
	case n < 12 || binary.BigEndian.Uint16(r) != 0x5eed:
		t.Fatalf("answer %x: not an answer to query 0x5eed", r)
	case r[3]&0x0f != 0 || binary.BigEndian.Uint16(r[6:]) != 1:
		t.Fatalf("answer %x: rcode %d, %d answers; want no error and 1 answer", r, r[3]&0x0f, binary.BigEndian.Uint16(r[6:]))
	case !bytes.Equal(r[n-4:], want[:]) || !bytes.Equal(r[12:len(q)], q[12:]):
		t.Fatalf("answer %x: want the question echoed and the address %v", r, want)
	}
}

// TestUDPFlowExpiry checks that a flow idle for --udp-idle-timeout ends on
// both daemons, with a stream_closed event carrying its datagram counts,
// and that the client's next datagram starts a new flow.
func TestUDPFlowExpiry(t *testing.T) {
	a := startDaemon(t, "--bootstrap", "none", "--dht", "off", "--udp-idle-timeout", "500ms")
	b := startDaemon(t, "--bootstrap", "none", "--dht", "off")
	svc := startUDPService(t, func(d []byte) []byte { return d })
	addr := udpTunnel(t, a, b, "/x/idle", svc.short())

	events := helperlessCommand(a, "events", "--json")
	stdout, err := events.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := events.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = events.Process.Kill()
		_ = events.Wait()
	})
	closed := make(chan api.Event, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var ev api.Event
			if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Type == api.EventStreamClosed {
				closed <- ev
			}
		}
		close(closed)
	}()

	c := udpDial(t, addr)
	// A round trip can outlast the short timeout on a loaded machine (the
	// flow then ends before the echo is back): retry until one makes it.
	echoRound := func(msg string) {
		t.Helper()
		eventually(t, time.Minute, func() error {
			if _, err := c.Write([]byte(msg)); err != nil {
				return err
			}
			buf := make([]byte, 64)
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, err := c.Read(buf)
			if err != nil || string(buf[:n]) != msg {
				return fmt.Errorf("echo of %q: %q, %v", msg, buf[:n], err)
			}
			return nil
		})
	}
	noStreams := func() error {
		for _, n := range []*node{a, b} {
			var ss []api.Stream
			n.mustJSON(&ss, "streams")
			if len(ss) != 0 {
				return fmt.Errorf("%d streams still open: %+v", len(ss), ss)
			}
		}
		return nil
	}
	echoRound("first")
	eventually(t, time.Minute, noStreams)
	select {
	case ev, ok := <-closed:
		if !ok {
			t.Fatal("the event stream ended")
		}
		if s := ev.Stream; s == nil || s.DatagramsOut == nil || *s.DatagramsOut == 0 || !strings.Contains(s.OriginAddress, "/udp/") {
			t.Errorf("stream_closed event %+v: want a UDP flow with datagram counts", ev.Stream)
		}
	case <-time.After(udpReplyTimeout):
		t.Error("no stream_closed event for the idle flow")
	}
	echoRound("second")
	if n := svc.sourceCount(); n < 2 {
		t.Errorf("the service saw %d source addresses, want a new one for the new flow", n)
	}
}

// TestUDPTunnelsListRestartClose checks ls, persistence across restarts,
// close by a short UDP address, and the error of a TCP forward to a UDP
// listen.
func TestUDPTunnelsListRestartClose(t *testing.T) {
	a, b := pair(t)
	svc := startUDPService(t, func(d []byte) []byte { return d })
	addr := udpTunnel(t, a, b, "/x/upersist", svc.short())
	var lsA, lsB []api.Listener
	a.mustJSON(&lsA, "ls")
	b.mustJSON(&lsB, "ls")
	if len(lsA) != 1 || !strings.Contains(lsA[0].ListenAddress, "/udp/") || len(lsB) != 1 || !strings.Contains(lsB[0].TargetAddress, "/udp/") {
		t.Fatalf("ls: a %+v, b %+v; want /udp/ addresses", lsA, lsB)
	}

	a.restart()
	b.restartSamePort()
	var lsA2, lsB2 []api.Listener
	a.mustJSON(&lsA2, "ls")
	b.mustJSON(&lsB2, "ls")
	if fmt.Sprint(lsA) != fmt.Sprint(lsA2) || fmt.Sprint(lsB) != fmt.Sprint(lsB2) {
		t.Fatalf("UDP tunnels changed across restart:\na %+v\n  %+v\nb %+v\n  %+v", lsA, lsA2, lsB, lsB2)
	}
	c := udpDial(t, addr)
	if _, err := c.Write([]byte("after restart")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	_ = c.SetReadDeadline(time.Now().Add(udpReplyTimeout))
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "after restart" {
		t.Fatalf("echo after restart: %q, %v", buf[:n], err)
	}

	// A TCP forward of the protocol finds the peer serving it over UDP.
	var tcpFwd api.Listener
	a.mustJSON(&tcpFwd, "forward", "/x/upersist", "/ip4/127.0.0.1/tcp/0", b.addr())
	if conn, err := dialOnce(hostPort(t, tcpFwd.ListenAddress)); err == nil {
		_, _ = conn.Write([]byte("hello"))
		_, _ = conn.Read(buf)
		conn.Close()
	}
	eventually(t, 30*time.Second, func() error {
		var ls []api.Listener
		a.mustJSON(&ls, "ls")
		for _, l := range ls {
			if strings.Contains(l.ListenAddress, "/tcp/") {
				if !strings.Contains(l.LastError, "transport mismatch: the peer serves /x/upersist over UDP, this forward is TCP") {
					return fmt.Errorf("TCP forward's last_error %q", l.LastError)
				}
				return nil
			}
		}
		return errors.New("the TCP forward is not listed")
	})

	_, port, _ := net.SplitHostPort(addr)
	var closed api.CloseResponse
	a.mustJSON(&closed, "close", "-l", "127.0.0.1:"+port+"/udp")
	if closed.Closed != 1 {
		t.Fatalf("close -l 127.0.0.1:%s/udp closed %d, want 1", port, closed.Closed)
	}
	b.mustJSON(&closed, "close", "-t", svc.short())
	if closed.Closed != 1 {
		t.Fatalf("close -t %s closed %d, want 1", svc.short(), closed.Closed)
	}
	if r := b.cli("ls"); strings.TrimSpace(r.stdout) != "" {
		t.Fatalf("ls after close: %s", r)
	}
}
