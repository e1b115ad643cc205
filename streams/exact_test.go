package streams

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// TestMessageOfSmallBufferSize sends request/response messages whose sizes
// are around and at the size of the bridge's small read buffer: a message
// that exactly fills it must be passed on at once, not held until more data
// comes.
func TestMessageOfSmallBufferSize(t *testing.T) {
	for _, size := range []int{smallReadSize - 1, smallReadSize, smallReadSize + 1, 2 * smallReadSize} {
		t.Run(fmt.Sprintf("%d bytes", size), func(t *testing.T) {
			service := func(c net.Conn) {
				buf := make([]byte, size)
				for {
					if _, err := io.ReadFull(c, buf); err != nil {
						return
					}
					if _, err := c.Write(buf); err != nil {
						return
					}
				}
			}
			tun := newTunnel(t, service, tunnelConfig{})
			c := tun.dial(t)
			msg := bytes.Repeat([]byte{'m'}, size)
			got := make([]byte, size)
			for i := range 3 {
				msg[0] = byte(i)
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := c.Write(msg); err != nil {
					t.Fatal(err)
				}
				if _, err := io.ReadFull(c, got); err != nil {
					t.Fatalf("exchange %d of a %d-byte message: %v", i, size, err)
				}
				if !bytes.Equal(got, msg) {
					t.Fatalf("exchange %d: the answer differs from the message", i)
				}
			}
		})
	}
}
