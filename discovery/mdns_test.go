package discovery

import (
	"net"
	"testing"
	"time"
)

// multicastWorks reports whether a multicast datagram sent on this machine
// comes back to a socket joined to the group, on some up, multicast-capable
// interface, which is what mDNS between two local hosts needs.
func multicastWorks(t *testing.T) (bool, string) {
	t.Helper()
	ifaces, err := net.Interfaces()
	if err != nil {
		return false, "listing interfaces: " + err.Error()
	}
	group := net.IPv4(239, 255, 42, 99)
	tried := ""
	for _, ifi := range ifaces {
		if ifi.Flags&net.FlagUp == 0 || ifi.Flags&net.FlagMulticast == 0 {
			continue
		}
		tried += " " + ifi.Name
		l, err := net.ListenMulticastUDP("udp4", &ifi, &net.UDPAddr{IP: group})
		if err != nil {
			continue
		}
		port := l.LocalAddr().(*net.UDPAddr).Port
		s, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: group, Port: port})
		if err != nil {
			l.Close()
			continue
		}
		_, err = s.Write([]byte("p2pd-probe"))
		s.Close()
		if err != nil {
			l.Close()
			continue
		}
		buf := make([]byte, 64)
		l.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, _, err := l.ReadFromUDP(buf)
		l.Close()
		if err == nil && string(buf[:n]) == "p2pd-probe" {
			return true, ifi.Name
		}
	}
	if tried == "" {
		return false, "no up, multicast-capable interface"
	}
	return false, "a multicast datagram did not come back on:" + tried
}

// TestMDNS: two nodes with the DHT off find each other on the LAN, connect
// and report each other with source "mdns".
func TestMDNS(t *testing.T) {
	ok, why := multicastWorks(t)
	if !ok {
		t.Skipf("skipping mDNS test: multicast does not work on this machine (%s)", why)
	}
	t.Logf("multicast works on %s", why)
	a := newNode(t, Mode("off"), MDNS(true))
	b := newNode(t, Mode("off"), MDNS(true))
	eventually(t, patience, "a and b find each other by mDNS", func() bool {
		return a.rec.count(MDNSSource, b.h.ID()) > 0 && b.rec.count(MDNSSource, a.h.ID()) > 0
	})
	if !connected(a, b) {
		t.Errorf("found by mDNS but not connected")
	}
}

// TestMDNSFiltered: with a filter that drops every address, peers seen by
// mDNS are skipped.
func TestMDNSFiltered(t *testing.T) {
	ok, why := multicastWorks(t)
	if !ok {
		t.Skipf("skipping mDNS test: multicast does not work on this machine (%s)", why)
	}
	blind := newNode(t, Mode("off"), MDNS(true), AddrFilter(dropAll))
	a := newNode(t, Mode("off"), MDNS(true))
	eventually(t, patience, "a finds the blind node by mDNS, and the blind node hears answers", func() bool {
		return a.rec.count(MDNSSource, blind.h.ID()) > 0 && blind.s.mdnsHits.Load() > 0
	})
	if n := blind.rec.total(); n != 0 {
		t.Errorf("a node that filters every address reported %d peers found by mDNS", n)
	}
}
