package listeners

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/p2pd/p2pd/internal/nettest"
	"github.com/p2pd/p2pd/udpflow"
)

// udpService is a real UDP echo server on loopback that records the source
// address of every datagram it got.
type udpService struct {
	pc   *net.UDPConn
	addr ma.Multiaddr
	wg   sync.WaitGroup

	mu      sync.Mutex // guards sources
	sources map[string]int
}

func newUDPService(t testing.TB) *udpService {
	t.Helper()
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	udpflow.SetBuffers(pc, udpflow.DefaultSocketBuffer)
	addr, err := manet.FromNetAddr(pc.LocalAddr())
	if err != nil {
		t.Fatal(err)
	}
	s := &udpService{pc: pc, addr: addr, sources: map[string]int{}}
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
			s.sources[from.String()]++
			s.mu.Unlock()
			_, _ = pc.WriteToUDP(buf[:n], from)
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		s.wg.Wait()
	})
	return s
}

// received returns how many datagrams the service got and from how many
// source addresses.
func (s *udpService) received() (datagrams, sources int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.sources {
		datagrams += n
	}
	return datagrams, len(s.sources)
}

// udpTunnel makes b listen for testProto over UDP towards svc and a forward
// a fresh loopback UDP port to b.
func udpTunnel(t testing.TB, a, b *node, svc ma.Multiaddr) Info {
	t.Helper()
	if _, err := b.reg.Listen(t.Context(), ListenRequest{Protocol: testProto, Target: svc}); err != nil {
		t.Fatalf("listen: %v", err)
	}
	return udpForward(t, a, b)
}

func udpForward(t testing.TB, a, b *node) Info {
	t.Helper()
	fwd, err := a.reg.Forward(t.Context(), ForwardRequest{
		Protocol: testProto,
		Listen:   mustAddr(t, "/ip4/127.0.0.1/udp/0"),
		Target:   addrTarget(t, b),
	})
	if err != nil {
		t.Fatalf("forward: %v", err)
	}
	return fwd
}

// udpClient is a client socket of a UDP forward.
func udpClient(t testing.TB, fwd ma.Multiaddr) *net.UDPConn {
	t.Helper()
	_, addr, err := manet.DialArgs(fwd)
	if err != nil {
		t.Fatal(err)
	}
	raddr, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp4", nil, raddr)
	if err != nil {
		t.Fatal(err)
	}
	udpflow.SetBuffers(c, udpflow.DefaultSocketBuffer)
	t.Cleanup(func() { c.Close() })
	return c
}

// exchangeDatagram sends msg on c and checks that the echo comes back
// whole, as one datagram.
func exchangeDatagram(c *net.UDPConn, msg []byte) error {
	if _, err := c.Write(msg); err != nil {
		return fmt.Errorf("sending %d bytes: %w", len(msg), err)
	}
	buf := make([]byte, 1<<16)
	_ = c.SetReadDeadline(time.Now().Add(testTimeout))
	n, err := c.Read(buf)
	if err != nil {
		return fmt.Errorf("reading the echo of %d bytes: %w", len(msg), err)
	}
	if !bytes.Equal(buf[:n], msg) {
		return fmt.Errorf("echo of a %d-byte datagram: got %d bytes that differ", len(msg), n)
	}
	return nil
}

func mustExchange(t testing.TB, c *net.UDPConn, msg []byte) {
	t.Helper()
	if err := exchangeDatagram(c, msg); err != nil {
		t.Fatal(err)
	}
}

// datagram returns a datagram of n bytes that tells client and seq apart.
func datagram(client, seq, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(client*31 + seq*7 + i)
	}
	return b
}

// TestUDPTunnel checks that datagrams of every size, from several clients,
// cross a UDP forward and listen whole and come back to their own client,
// that the service sees one source per client, and what ls and streams show.
func TestUDPTunnel(t *testing.T) {
	svc := newUDPService(t)
	a, b := newNode(t), newNode(t)
	fwd := udpTunnel(t, a, b, svc.addr)
	if port, err := fwd.ListenAddr.ValueForProtocol(ma.P_UDP); err != nil || port == "0" {
		t.Fatalf("ListenAddr = %s, want a real UDP port", fwd.ListenAddr)
	}

	sizes := []int{0, 1, 100, 1200, 9000, udpflow.MaxDatagram}
	const clients = 3
	var wg sync.WaitGroup
	for i := range clients {
		c := udpClient(t, fwd.ListenAddr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq, n := range sizes {
				if err := exchangeDatagram(c, datagram(i, seq, n)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()

	if got, sources := svc.received(); got != clients*len(sizes) || sources != clients {
		t.Errorf("service got %d datagrams from %d sources, want %d from %d", got, sources, clients*len(sizes), clients)
	}
	var total int
	for _, n := range sizes {
		total += n
	}
	waitFor(t, "every flow to count its datagrams", func() bool {
		list := a.s.List()
		if len(list) != clients {
			return false
		}
		for _, s := range list {
			d := s.Datagrams
			if d == nil || d.Out != uint64(len(sizes)) || d.In != uint64(len(sizes)) ||
				s.BytesOut != uint64(total) || s.BytesIn != uint64(total) || d.Dropped != 0 {
				return false
			}
		}
		return true
	})
	for _, s := range a.s.List() {
		if _, err := s.Origin.ValueForProtocol(ma.P_UDP); err != nil {
			t.Errorf("flow origin %s, want a /udp/ address", s.Origin)
		}
		if s.Protocol != udpflow.WireProtocol(testProto) {
			t.Errorf("flow protocol %s, want %s", s.Protocol, udpflow.WireProtocol(testProto))
		}
	}
	for _, s := range b.s.List() {
		if !s.Target.Equal(svc.addr) || s.Datagrams == nil {
			t.Errorf("listen-side flow %+v, want target %s and datagram counts", s, svc.addr)
		}
	}
}

// TestUDPAndTCPListenOneProtocol checks that one protocol may be served
// over TCP and over UDP at once, each forward reaching its own.
func TestUDPAndTCPListenOneProtocol(t *testing.T) {
	udpSvc, tcpSvc := newUDPService(t), newService(t, echo)
	a, b := newNode(t), newNode(t)
	fwd := udpTunnel(t, a, b, udpSvc.addr)
	listenOn(t, b, tcpSvc.addr)
	tcpFwd := forwardTo(t, a, addrTarget(t, b))

	mustExchange(t, udpClient(t, fwd.ListenAddr), []byte("over UDP"))
	checkEcho(t, tcpFwd.ListenAddr, []byte("over TCP"))
	if n, _ := udpSvc.received(); n != 1 || tcpSvc.accepted.Load() != 1 {
		t.Errorf("UDP service got %d datagrams, TCP service %d connections; want 1 each", n, tcpSvc.accepted.Load())
	}
	if got, err := b.reg.Close(Match{Protocol: testProto}); err != nil || got != 2 {
		t.Errorf("Close(protocol) = %d, %v; want both listens", got, err)
	}
}

// TestTransportMismatch checks that a TCP forward to a UDP listen, and a
// UDP forward to a TCP listen, fail with a last error that says so.
func TestTransportMismatch(t *testing.T) {
	t.Run("TCP forward to a UDP listen", func(t *testing.T) {
		a, b := newNode(t), newNode(t)
		if _, err := b.reg.Listen(t.Context(), ListenRequest{Protocol: testProto, Target: newUDPService(t).addr}); err != nil {
			t.Fatal(err)
		}
		fwd := forwardTo(t, a, addrTarget(t, b))
		if got, err := roundTrip(t, fwd.ListenAddr, []byte("hello")); err == nil || len(got) != 0 {
			t.Errorf("round trip: %q, %v; want nothing and an error", got, err)
		}
		checkMismatch(t, a, "the peer serves /x/test over UDP, this forward is TCP")
	})
	t.Run("UDP forward to a TCP listen", func(t *testing.T) {
		a, b := newNode(t), newNode(t)
		svc := newService(t, echo)
		listenOn(t, b, svc.addr)
		fwd := udpForward(t, a, b)
		c := udpClient(t, fwd.ListenAddr)
		if _, err := c.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the forward's last error", func() bool { return a.reg.List()[0].LastError != "" })
		checkMismatch(t, a, "the peer serves /x/test over TCP, this forward is UDP")
		if n := svc.accepted.Load(); n != 0 {
			t.Errorf("the TCP service accepted %d connections, want 0", n)
		}
	})
}

func checkMismatch(t *testing.T, n *node, want string) {
	t.Helper()
	l := n.reg.List()[0]
	if !strings.HasPrefix(l.LastError, "transport mismatch: "+want) {
		t.Errorf("LastError = %q, want it to start with %q", l.LastError, "transport mismatch: "+want)
	}
}

// TestUDPFlowIdle checks that an idle flow ends on both sides and that the
// client's next datagram starts a new one.
func TestUDPFlowIdle(t *testing.T) {
	svc := newUDPService(t)
	a, b := newNode(t, WithUDPIdleTimeout(100*time.Millisecond)), newNode(t)
	fwd := udpTunnel(t, a, b, svc.addr)
	c := udpClient(t, fwd.ListenAddr)

	// On a loaded machine a round trip can outlast the short timeout (the
	// flow then ends before the echo comes back): retry until one makes it.
	echoed := func(msg string) bool {
		_, _ = c.Write([]byte(msg))
		buf := make([]byte, 64)
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		n, err := c.Read(buf)
		return err == nil && string(buf[:n]) == msg
	}
	for round := range 2 {
		waitFor(t, "an echo through a fresh flow", func() bool { return echoed(fmt.Sprint("round ", round)) })
		waitFor(t, "the idle flow to end on both sides", func() bool { return a.s.Len() == 0 && b.s.Len() == 0 })
	}
	// The second round's flow started after the first had ended.
	if _, sources := svc.received(); sources < 2 {
		t.Errorf("the service saw %d sources, want at least 2 (one socket per flow)", sources)
	}
}

// TestUDPAllowPeers checks that a UDP listen refuses a peer that is not
// allowed before it opens a socket to the target.
func TestUDPAllowPeers(t *testing.T) {
	logs := captureLogs(t)
	svc := newUDPService(t)
	a, b := newNode(t), newNode(t)
	if _, err := b.reg.Listen(t.Context(), ListenRequest{
		Protocol:   testProto,
		Target:     svc.addr,
		AllowPeers: []peer.ID{randomPeer(t)},
	}); err != nil {
		t.Fatal(err)
	}
	fwd := udpForward(t, a, b)
	if _, err := udpClient(t, fwd.ListenAddr).Write([]byte("let me in")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the refusal to be logged", func() bool {
		return logs.has(map[string]string{"peer": a.h.ID().String(), "protocol": string(testProto)})
	})
	if n, _ := svc.received(); n != 0 {
		t.Errorf("the service got %d datagrams from a refused peer, want 0", n)
	}
	want := fmt.Sprintf("refused by %s: not in the listener's --allow-peer list", b.h.ID())
	waitFor(t, "the refusal in the forward's last error", func() bool { return a.reg.List()[0].LastError == want })
}

// TestUDPCloseLeavesFlowsOpen checks that closing a UDP forward keeps its
// flows, and that its port is free once they end.
func TestUDPCloseLeavesFlowsOpen(t *testing.T) {
	svc := newUDPService(t)
	a, b := newNode(t), newNode(t)
	fwd := udpTunnel(t, a, b, svc.addr)
	c := udpClient(t, fwd.ListenAddr)
	mustExchange(t, c, []byte("before close"))
	if got, err := a.reg.Close(Match{All: true}); err != nil || got != 1 {
		t.Fatalf("Close(all) = %d, %v; want 1", got, err)
	}
	mustExchange(t, c, []byte("after close"))
	if got := a.s.ResetAll(); got != 1 {
		t.Fatalf("ResetAll = %d, want the 1 flow", got)
	}
	_, addr, err := manet.DialArgs(fwd.ListenAddr)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the port to be free", func() bool {
		pc, err := net.ListenPacket("udp4", addr)
		if err == nil {
			pc.Close()
		}
		return err == nil
	})
}

// TestUDPTargetRefuses checks that a UDP target that is not running shows
// in the listen's last error.
func TestUDPTargetRefuses(t *testing.T) {
	dead, err := manet.FromNetAddr(nettest.RefusingUDPAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	a, b := newNode(t), newNode(t)
	fwd := udpTunnel(t, a, b, dead)
	c := udpClient(t, fwd.ListenAddr)
	waitFor(t, "the listen's last error", func() bool {
		_, _ = c.Write([]byte("anyone?")) // the client's socket may see ICMP of its own
		return b.reg.List()[0].LastError != ""
	})
	// The refusal shows on the next send or on the socket's next read.
	got, want := b.reg.List()[0].LastError, mustNetAddr(t, dead)
	if !strings.Contains(got, want) || !strings.Contains(got, "connection refused") {
		t.Errorf("LastError = %q, want it to contain %q and connection refused", got, want)
	}
}

func mustNetAddr(t testing.TB, a ma.Multiaddr) string {
	t.Helper()
	_, addr, err := manet.DialArgs(a)
	if err != nil {
		t.Fatal(err)
	}
	return addr
}
