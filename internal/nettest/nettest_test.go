package nettest

import (
	"errors"
	"net"
	"syscall"
	"testing"
)

// TestRefusingAddr checks that the address refuses connections and that no
// listener can be given its port while the test runs.
func TestRefusingAddr(t *testing.T) {
	a := RefusingAddr(t)
	if !a.IP.IsLoopback() || a.Port == 0 {
		t.Fatalf("RefusingAddr = %v, want a loopback address with a port", a)
	}
	c, err := net.DialTCP("tcp", nil, a)
	if err == nil {
		c.Close()
		t.Fatalf("dialling %v succeeded, want it refused", a)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dialling %v: %v, want connection refused", a, err)
	}
	ln, err := net.ListenTCP("tcp", a)
	if err == nil {
		ln.Close()
		t.Fatalf("listening on %v succeeded, want the port held", a)
	}
}
