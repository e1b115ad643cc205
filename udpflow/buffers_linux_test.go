package udpflow

import (
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestSetBuffersPastTheCap checks that, as root, a flow's socket gets the
// buffers it asks for even past net.core.rmem_max.
func TestSetBuffersPastTheCap(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_NET_ADMIN) to pass the system's cap")
	}
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	capBytes, err := os.ReadFile("/proc/sys/net/core/rmem_max")
	if err != nil {
		t.Skipf("reading rmem_max: %v", err)
	}
	max, err := strconv.Atoi(strings.TrimSpace(string(capBytes)))
	if err != nil {
		t.Fatalf("rmem_max %q: %v", capBytes, err)
	}
	want := 2*max + 1<<20 // past the cap
	SetBuffers(c, want)
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	for _, opt := range []int{syscall.SO_RCVBUF, syscall.SO_SNDBUF} {
		var got int
		var gerr error
		_ = rc.Control(func(fd uintptr) { got, gerr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, opt) })
		if gerr != nil || got < want {
			t.Errorf("socket option %d = %d (%v), want at least %d (rmem_max %d)", opt, got, gerr, want, max)
		}
	}
}
