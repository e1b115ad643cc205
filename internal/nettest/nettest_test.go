package nettest

import (
	"errors"
	"net"
	"syscall"
	"testing"
	"time"
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

// TestRefusingUDPAddr checks that a datagram to the address is refused and
// that no socket can be bound to its port while the test runs.
func TestRefusingUDPAddr(t *testing.T) {
	a := RefusingUDPAddr(t)
	if !a.IP.IsLoopback() || a.Port == 0 {
		t.Fatalf("RefusingUDPAddr = %v, want a loopback address with a port", a)
	}
	c, err := net.DialUDP("udp4", nil, a)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The refusal of the datagram wakes the socket's reader with the error.
	if _, err := c.Write([]byte("anyone?")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Read(make([]byte, 8)); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("sending to %v: %v, want connection refused", a, err)
	}
	pc, err := net.ListenUDP("udp4", a)
	if err == nil {
		pc.Close()
		t.Fatalf("binding %v succeeded, want the port held", a)
	}
}
