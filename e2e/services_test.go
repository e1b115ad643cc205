package e2e

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
)

// Real TCP services for the far side of tunnels. Each runs in the test
// process until the test ends, except echoProcess, which runs in a child
// process so that 10,000 connections fit in each process's file limit.

// service is a TCP listener on 127.0.0.1 whose connections are handled by
// handle in goroutines; stopped (listener and connections) at cleanup.
type service struct {
	ln      net.Listener
	mu      sync.Mutex // guards conns
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup
	accepts int64 // guarded by mu
}

func startService(t testing.TB, handle func(c net.Conn)) *service {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &service{ln: ln, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[c] = struct{}{}
			s.accepts++
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				handle(c)
				c.Close()
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

// maddr is the service's address as a multiaddr.
func (s *service) maddr() string {
	a := s.ln.Addr().(*net.TCPAddr)
	return fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", a.Port)
}

func (s *service) acceptCount() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepts
}

// randomStream is n deterministic pseudo-random bytes from seed.
func randomStream(seed uint64, n int64) io.Reader {
	return io.LimitReader(&prng{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}, n)
}

type prng struct{ r *rand.Rand }

func (p *prng) Read(b []byte) (int, error) {
	for i := 0; i+8 <= len(b); i += 8 {
		v := p.r.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := len(b) &^ 7; i < len(b); i++ {
		b[i] = byte(p.r.Uint32())
	}
	return len(b), nil
}

// sha copies r into a hash and returns its hex digest and length.
func sha(r io.Reader) (string, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	return hex.EncodeToString(h.Sum(nil)), n, err
}

// sinkHandler reads everything, then answers "<sha256> <length>\n" after
// EOF: the client can half-close and still receive the verdict.
func sinkHandler(c net.Conn) {
	sum, n, err := sha(c)
	if err != nil {
		return
	}
	fmt.Fprintf(c, "%s %d\n", sum, n)
}

// sourceHandler sends n bytes of randomStream(seed) and closes.
func sourceHandler(seed uint64, n int64) func(net.Conn) {
	return func(c net.Conn) { io.Copy(c, randomStream(seed, n)) }
}

// echoHandler echoes until EOF, then half-closes. It copies through a
// small buffer: io.Copy between two TCP sockets would splice through a pipe
// of two more file descriptors per connection.
func echoHandler(c net.Conn) {
	io.CopyBuffer(struct{ io.Writer }{c}, struct{ io.Reader }{c}, make([]byte, 16<<10))
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}

// echoProcess starts a TCP echo server in a child process (this test binary
// re-run in helper mode) and returns its multiaddr.
func echoProcess(t testing.TB) (addr string, pid int) {
	t.Helper()
	cmd := helperCommand("echo")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close() // the helper exits when its stdin closes
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("echo helper: %v", err)
	}
	port, err := strconv.Atoi(line[:len(line)-1])
	if err != nil {
		t.Fatalf("echo helper said %q", line)
	}
	return fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port), cmd.Process.Pid
}

// openFiles counts a process's open file descriptors.
func openFiles(pid int) int {
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(fds)
}
