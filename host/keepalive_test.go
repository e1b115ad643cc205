package host

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// blackhole relays TCP connections to a remote address until cut, after
// which it passes nothing in either direction but keeps every socket open:
// to both ends the link looks cut, not closed.
type blackhole struct {
	ln     net.Listener
	remote string
	cut    atomic.Bool
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
}

func newBlackhole(t *testing.T, remote string) *blackhole {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{ln: ln, remote: remote}
	b.wg.Add(1)
	go b.accept()
	t.Cleanup(func() {
		ln.Close()
		b.mu.Lock()
		for _, c := range b.conns {
			c.Close()
		}
		b.mu.Unlock()
		b.wg.Wait()
	})
	return b
}

func (b *blackhole) accept() {
	defer b.wg.Done()
	for {
		in, err := b.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", b.remote)
		if err != nil {
			in.Close()
			continue
		}
		b.mu.Lock()
		b.conns = append(b.conns, in, out)
		b.mu.Unlock()
		b.wg.Add(2)
		go b.pipe(out, in)
		go b.pipe(in, out)
	}
}

// pipe copies src to dst until the link is cut or a socket is closed.
func (b *blackhole) pipe(dst, src net.Conn) {
	defer b.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if b.cut.Load() {
			return // the bytes are lost; the sockets stay open
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (b *blackhole) cutLink() { b.cut.Store(true) }

// TestCutLinkEndsConnection connects two hosts over TCP through a link that
// is then cut without either end being told: yamux's keepalive must notice
// and close the connection, which is what resets the tunnels riding on it.
func TestCutLinkEndsConnection(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b := newHost(t, ListenAddrs(loopTCP), Transports(TCP))
	target, err := manet.ToNetAddr(b.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	link := newBlackhole(t, target.String())
	via, err := manet.FromNetAddr(link.ln.Addr())
	if err != nil {
		t.Fatal(err)
	}
	const proto = "/x/keepalive"
	b.SetStreamHandler(proto, func(s network.Stream) {
		defer s.Reset()
		_, _ = io.Copy(io.Discard, s)
	})
	a := newHost(t, ListenAddrs(loopTCP), Transports(TCP))
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: []ma.Multiaddr{via}}); err != nil {
		t.Fatal(err)
	}
	conns := a.Network().ConnsToPeer(b.ID())
	if len(conns) != 1 || !conns[0].RemoteMultiaddr().Equal(via) {
		t.Fatalf("connections to the peer: %v, want one through %v", conns, via)
	}
	// A stream that is open when the link is cut must end with an error.
	st, err := a.NewStream(ctx, b.ID(), proto)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Reset()
	if _, err := st.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	readErr := make(chan error, 1)
	go func() {
		_, err := st.Read(make([]byte, 1))
		readErr <- err
	}()

	link.cutLink()
	start := time.Now()
	waitFor(ctx, t, "the connection over the cut link to close", func() bool {
		return a.Network().Connectedness(b.ID()) != network.Connected
	})
	t.Logf("the connection closed %s after the link was cut (keepalive interval %s)",
		time.Since(start).Round(100*time.Millisecond), KeepAliveInterval)
	select {
	case err := <-readErr:
		if !errors.Is(err, network.ErrReset) {
			t.Fatalf("reading the stream of the closed connection: %v, want a reset", err)
		}
	case <-ctx.Done():
		t.Fatal("the stream of the closed connection is still open")
	}
}
