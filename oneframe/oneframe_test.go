package oneframe

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
	"go.uber.org/goleak"
)

// testTimeout bounds every wait of the tests.
const testTimeout = 20 * time.Second

// testProto is the protocol the tests propose.
const testProto = protocol.ID("/x/test")

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// tcpStream is a network.Stream over one end of a loopback TCP connection;
// only what lazyStream uses is implemented.
type tcpStream struct {
	network.Stream
	c *net.TCPConn
}

func (s *tcpStream) Read(p []byte) (int, error)  { return s.c.Read(p) }
func (s *tcpStream) Write(p []byte) (int, error) { return s.c.Write(p) }
func (s *tcpStream) CloseWrite() error           { return s.c.CloseWrite() }
func (s *tcpStream) Close() error                { return s.c.Close() }

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, err := ln.Accept()
	if err != nil {
		a.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	for _, c := range []net.Conn{a, b} {
		_ = c.SetDeadline(time.Now().Add(testTimeout))
	}
	return a.(*net.TCPConn), b.(*net.TCPConn)
}

func answer(toks ...string) []byte {
	var b []byte
	for _, tok := range toks {
		b = appendToken(b, tok)
	}
	return b
}

// TestLazyStream checks the wire bytes of a lazyStream's proposal, that it
// goes out once and with the first data, and how answers are judged.
func TestLazyStream(t *testing.T) {
	proposal := answer(multistreamID, string(testProto))
	tests := []struct {
		name string
		// act uses the stream first and returns what the peer must read
		// before the answer is sent (up to EOF when eof is set).
		act     func(l *lazyStream) error
		want    []byte
		eof     bool
		answer  []byte // sent back, followed by "pong"
		wantErr string // of the first Read; "" expects "pong"
	}{
		{
			name:   "first write carries the proposal",
			act:    func(l *lazyStream) error { _, err := l.Write([]byte("ping")); return err },
			want:   append(bytes.Clone(proposal), "ping"...),
			answer: answer(multistreamID, string(testProto)),
		},
		{
			name:   "half-close before any data sends the proposal alone",
			act:    func(l *lazyStream) error { return l.CloseWrite() },
			want:   proposal,
			eof:    true,
			answer: answer(multistreamID, string(testProto)),
		},
		{
			name:    "refused",
			act:     func(l *lazyStream) error { _, err := l.Write([]byte("ping")); return err },
			want:    append(bytes.Clone(proposal), "ping"...),
			answer:  answer(multistreamID, "na"),
			wantErr: "protocols not supported: [/x/test]",
		},
		{
			name:    "another protocol echoed",
			act:     func(l *lazyStream) error { _, err := l.Write([]byte("ping")); return err },
			want:    append(bytes.Clone(proposal), "ping"...),
			answer:  answer(multistreamID, "/x/other"),
			wantErr: "protocol mismatch in lazy handshake (/x/other != /x/test)",
		},
		{
			name:    "another multistream version",
			act:     func(l *lazyStream) error { _, err := l.Write([]byte("ping")); return err },
			want:    append(bytes.Clone(proposal), "ping"...),
			answer:  answer("/multistream/2.0.0", string(testProto)),
			wantErr: "protocol mismatch in lazy handshake (/multistream/2.0.0 != /multistream/1.0.0)",
		},
		{
			name:    "garbled answer",
			act:     func(l *lazyStream) error { _, err := l.Write([]byte("ping")); return err },
			want:    append(bytes.Clone(proposal), "ping"...),
			answer:  []byte{0x80, 0x80, 0x01}, // a length of 16384
			wantErr: "reading the answer to the protocol proposal: message of 16384 bytes in a protocol answer",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			local, remote := tcpPair(t)
			l := &lazyStream{Stream: &tcpStream{c: local}, proto: testProto, proposal: proposal}
			if err := tc.act(l); err != nil {
				t.Fatalf("using the stream: %v", err)
			}
			got := make([]byte, len(tc.want))
			if _, err := io.ReadFull(remote, got); err != nil {
				t.Fatalf("peer reading the proposal: %v", err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("peer read %q, want %q", got, tc.want)
			}
			if tc.eof {
				if n, err := remote.Read(make([]byte, 1)); n != 0 || err != io.EOF {
					t.Fatalf("after the proposal: read %d bytes, %v; want EOF", n, err)
				}
			}
			if _, err := remote.Write(append(bytes.Clone(tc.answer), "pong"...)); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 4)
			_, err := io.ReadFull(l, buf)
			switch {
			case tc.wantErr != "":
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("Read error = %v, want %q", err, tc.wantErr)
				}
				return
			case err != nil:
				t.Fatalf("Read: %v", err)
			case string(buf) != "pong":
				t.Fatalf("Read %q, want %q", buf, "pong")
			}
			if tc.eof {
				return
			}
			// The proposal goes out once.
			if _, err := l.Write([]byte("more")); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(remote, buf); err != nil || string(buf) != "more" {
				t.Fatalf("second write: peer read %q, %v; want %q", buf, err, "more")
			}
		})
	}
}

// TestLazyStreamReadFirst checks that a Read before any Write sends the
// proposal by itself, and that the first Write after it sends only data.
func TestLazyStreamReadFirst(t *testing.T) {
	proposal := answer(multistreamID, string(testProto))
	local, remote := tcpPair(t)
	l := &lazyStream{Stream: &tcpStream{c: local}, proto: testProto, proposal: proposal}
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		buf := make([]byte, 5)
		_, err := io.ReadFull(l, buf)
		done <- result{buf, err}
	}()
	got := make([]byte, len(proposal))
	if _, err := io.ReadFull(remote, got); err != nil || !bytes.Equal(got, proposal) {
		t.Fatalf("peer read %q, %v; want the proposal %q", got, err, proposal)
	}
	if _, err := remote.Write(append(answer(multistreamID, string(testProto)), "hello"...)); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.err != nil || string(r.b) != "hello" {
		t.Fatalf("Read = %q, %v; want %q", r.b, r.err, "hello")
	}
	if _, err := l.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	one := make([]byte, 1)
	if _, err := io.ReadFull(remote, one); err != nil || one[0] != 'x' {
		t.Fatalf("peer read %q, %v; want %q", one, err, "x")
	}
}
