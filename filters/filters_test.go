package filters

import (
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestParsePrefix(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // canonical prefix, when no error
		err  string // exact error text, when an error is expected
	}{
		{name: "ipv4 range", in: "10.0.0.0/8", want: "10.0.0.0/8"},
		{name: "ipv6 range", in: "fd00::/8", want: "fd00::/8"},
		{name: "bare ipv4 is /32", in: "10.0.0.1", want: "10.0.0.1/32"},
		{name: "bare ipv6 is /128", in: "::1", want: "::1/128"},
		{name: "host bits are masked", in: "10.0.0.1/8", want: "10.0.0.0/8"},
		{name: "zero length", in: "0.0.0.0/0", want: "0.0.0.0/0"},
		{name: "white space is trimmed", in: " 192.168.1.0/24\t", want: "192.168.1.0/24"},
		{name: "mapped ipv4 stays as written", in: "::ffff:10.0.0.0/104", want: "::ffff:10.0.0.0/104"},
		{
			name: "ipv4 length out of range", in: "10.0.0.0/99",
			err: `invalid CIDR "10.0.0.0/99": prefix length 99 is out of range for IPv4 (0-32)`,
		},
		{
			name: "ipv6 length out of range", in: "fd00::/129",
			err: `invalid CIDR "fd00::/129": prefix length 129 is out of range for IPv6 (0-128)`,
		},
		{
			name: "huge length", in: "10.0.0.0/99999999999999999999",
			err: `invalid CIDR "10.0.0.0/99999999999999999999": prefix length 99999999999999999999 is out of range for IPv4 (0-32)`,
		},
		{
			name: "negative length", in: "10.0.0.0/-1",
			err: `invalid CIDR "10.0.0.0/-1": prefix length "-1" is not a number`,
		},
		{
			name: "missing length", in: "10.0.0.0/",
			err: `invalid CIDR "10.0.0.0/": prefix length "" is not a number`,
		},
		{
			name: "word as length", in: "10.0.0.0/eight",
			err: `invalid CIDR "10.0.0.0/eight": prefix length "eight" is not a number`,
		},
		{
			name: "bad ipv4", in: "10.0.0.256/8",
			err: `invalid CIDR "10.0.0.256/8": "10.0.0.256" is not an IP address`,
		},
		{
			name: "host name", in: "example.com/8",
			err: `invalid CIDR "example.com/8": "example.com" is not an IP address`,
		},
		{
			name: "empty", in: "",
			err: `invalid CIDR "": empty address range`,
		},
		{
			name: "blank", in: "  ",
			err: `invalid CIDR "  ": empty address range`,
		},
		{
			name: "zone", in: "fe80::1%eth0/64",
			err: `invalid CIDR "fe80::1%eth0/64": IPv6 zones are not allowed in an address range`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePrefix(tt.in)
			if tt.err != "" {
				if err == nil {
					t.Fatalf("ParsePrefix(%q) = %v, want error %q", tt.in, got, tt.err)
				}
				if err.Error() != tt.err {
					t.Fatalf("ParsePrefix(%q) error = %q, want %q", tt.in, err, tt.err)
				}
				if !errors.Is(err, ErrInvalidPrefix) {
					t.Fatalf("error %q does not match ErrInvalidPrefix", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePrefix(%q): %v", tt.in, err)
			}
			if got.String() != tt.want {
				t.Fatalf("ParsePrefix(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestNewOptionErrors(t *testing.T) {
	tests := []struct {
		name string
		opt  Option
		err  string
	}{
		{name: "zero deny prefix", opt: Deny(netip.Prefix{}), err: "deny range: invalid CIDR: the zero prefix is not a range"},
		{name: "zero allow prefix", opt: Allow(netip.MustParsePrefix("10.0.0.0/8"), netip.Prefix{}), err: "allow range: invalid CIDR: the zero prefix is not a range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := New(tt.opt)
			if err == nil {
				t.Fatalf("New = %v, want error %q", f, tt.err)
			}
			if err.Error() != tt.err {
				t.Fatalf("New error = %q, want %q", err, tt.err)
			}
			if !errors.Is(err, ErrInvalidPrefix) {
				t.Fatalf("error %q does not match ErrInvalidPrefix", err)
			}
		})
	}
}

func mustFilters(t *testing.T, deny, allow []string) *Filters {
	t.Helper()
	var opts []Option
	for _, s := range deny {
		p, err := ParsePrefix(s)
		if err != nil {
			t.Fatal(err)
		}
		opts = append(opts, Deny(p))
	}
	for _, s := range allow {
		p, err := ParsePrefix(s)
		if err != nil {
			t.Fatal(err)
		}
		opts = append(opts, Allow(p))
	}
	f, err := New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

const (
	relayID = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"
	destID  = "12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo"
)

// Filter set-ups used by the address tables below.
var (
	denyTen      = [2][]string{{"10.0.0.0/8"}, nil}
	denyV6       = [2][]string{{"fd00::/8"}, nil}
	allowTen     = [2][]string{nil, {"10.0.0.0/8"}}
	denyWinsOver = [2][]string{{"10.1.0.0/16"}, {"10.0.0.0/8"}}
	allowV6Only  = [2][]string{nil, {"fd00::/8"}}
	denyMapped   = [2][]string{{"::ffff:192.168.0.0/112"}, nil}
	denyAllV6    = [2][]string{{"::/0"}, nil}
	noFilters    = [2][]string{nil, nil}
)

type addrCase struct {
	name  string
	rules [2][]string
	addr  string
	want  bool
}

var addrCases = []addrCase{
	{"no filters allow anything", noFilters, "/ip4/10.0.0.1/tcp/1", true},
	{"no filters allow a name", noFilters, "/dns4/example.com/tcp/1", true},

	{"ipv4 inside denied range", denyTen, "/ip4/10.2.3.4/tcp/4001", false},
	{"ipv4 outside denied range", denyTen, "/ip4/192.168.1.1/tcp/4001", true},
	{"ipv4 quic inside denied range", denyTen, "/ip4/10.2.3.4/udp/4001/quic-v1", false},
	{"ipv4 lower edge of denied range", denyTen, "/ip4/10.0.0.0/tcp/1", false},
	{"ipv4 just above denied range", denyTen, "/ip4/11.0.0.0/tcp/1", true},
	{"ipv4 just below denied range", denyTen, "/ip4/9.255.255.255/tcp/1", true},

	{"ipv6 inside denied range", denyV6, "/ip6/fd12::1/tcp/4001", false},
	{"ipv6 outside denied range", denyV6, "/ip6/2001:db8::1/tcp/4001", true},
	{"ipv6 with zone inside denied range", denyV6, "/ip6zone/eth0/ip6/fd12::1/tcp/1", false},
	{"ipv4 is not inside ::/0", denyAllV6, "/ip4/10.0.0.1/tcp/1", true},
	{"ipv6 inside ::/0", denyAllV6, "/ip6/2001:db8::1/tcp/1", false},

	{"mapped ipv4 matches ipv4 range", denyTen, "/ip6/::ffff:10.0.0.1/tcp/1", false},
	{"mapped ipv4 outside ipv4 range", denyTen, "/ip6/::ffff:192.168.0.1/tcp/1", true},
	{"mapped ipv4 inside allowed ipv4 range", allowTen, "/ip6/::ffff:10.9.9.9/udp/1/quic-v1", true},
	{"mapped range matches plain ipv4", denyMapped, "/ip4/192.168.7.7/tcp/1", false},
	{"mapped range leaves other ipv4 alone", denyMapped, "/ip4/192.169.0.1/tcp/1", true},

	{"allow list admits inside", allowTen, "/ip4/10.1.1.1/tcp/1", true},
	{"allow list refuses outside", allowTen, "/ip4/192.168.1.1/tcp/1", false},
	{"allow list refuses ipv6 outside", allowTen, "/ip6/fd00::1/tcp/1", false},
	{"ipv6 allow list refuses ipv4", allowV6Only, "/ip4/10.0.0.1/tcp/1", false},
	{"deny wins over allow", denyWinsOver, "/ip4/10.1.2.3/tcp/1", false},
	{"allowed outside the denied hole", denyWinsOver, "/ip4/10.2.2.3/tcp/1", true},

	{"dns passes deny list", denyTen, "/dns4/example.com/tcp/1", true},
	{"dns6 passes deny list", denyV6, "/dns6/example.com/tcp/1", true},
	{"dnsaddr passes deny list", denyTen, "/dnsaddr/bootstrap.libp2p.io", true},
	{"dns refused by allow list", allowTen, "/dns4/example.com/tcp/1", false},
	{"dns refused by allow list even if it resolves inside", allowTen, "/dns/ten.example/tcp/1", false},
	{"dnsaddr refused by allow list", allowTen, "/dnsaddr/bootstrap.libp2p.io", false},

	{"circuit judged by denied relay", denyTen, "/ip4/10.0.0.5/tcp/1/p2p/" + relayID + "/p2p-circuit/p2p/" + destID, false},
	{"circuit with relay outside denied range", denyTen, "/ip4/192.168.0.5/tcp/1/p2p/" + relayID + "/p2p-circuit/p2p/" + destID, true},
	{"circuit with allowed relay", allowTen, "/ip4/10.0.0.5/udp/1/quic-v1/p2p/" + relayID + "/p2p-circuit/p2p/" + destID, true},
	{"circuit with relay outside allow list", allowTen, "/ip4/8.8.8.8/tcp/1/p2p/" + relayID + "/p2p-circuit", false},
	{"circuit with named relay passes deny list", denyTen, "/dns4/relay.example/tcp/1/p2p/" + relayID + "/p2p-circuit/p2p/" + destID, true},
	{"circuit with named relay refused by allow list", allowTen, "/dns4/relay.example/tcp/1/p2p/" + relayID + "/p2p-circuit/p2p/" + destID, false},
	{"circuit without relay address passes deny list", denyTen, "/p2p/" + relayID + "/p2p-circuit/p2p/" + destID, true},
	{"circuit without relay address refused by allow list", allowTen, "/p2p/" + relayID + "/p2p-circuit/p2p/" + destID, false},

	{"unix passes deny list", denyTen, "/unix/tmp/p2pd.sock", true},
	{"unix refused by allow list", allowTen, "/unix/tmp/p2pd.sock", false},
	{"bare p2p refused by allow list", allowTen, "/p2p/" + destID, false},
}

func TestAddrAllowed(t *testing.T) {
	for _, tt := range addrCases {
		t.Run(tt.name, func(t *testing.T) {
			f := mustFilters(t, tt.rules[0], tt.rules[1])
			a := ma.StringCast(tt.addr)
			if got := f.AddrAllowed(a); got != tt.want {
				t.Fatalf("deny %v allow %v: AddrAllowed(%s) = %v, want %v", tt.rules[0], tt.rules[1], a, got, tt.want)
			}
		})
	}
}

func TestEmptyMultiaddr(t *testing.T) {
	if !mustFilters(t, []string{"10.0.0.0/8"}, nil).AddrAllowed(ma.Multiaddr{}) {
		t.Fatal("deny-only filters refused an empty address; nothing in it lies in a denied range")
	}
	if mustFilters(t, nil, []string{"10.0.0.0/8"}).AddrAllowed(ma.Multiaddr{}) {
		t.Fatal("allow list admitted an empty address")
	}
}

// fakeConnAddrs is a network.ConnMultiaddrs with a fixed remote address.
type fakeConnAddrs struct{ remote ma.Multiaddr }

func (c fakeConnAddrs) LocalMultiaddr() ma.Multiaddr  { return ma.StringCast("/ip4/127.0.0.1/tcp/4001") }
func (c fakeConnAddrs) RemoteMultiaddr() ma.Multiaddr { return c.remote }

// fakeConn is a network.Conn whose only working methods are the ones the
// gater calls.
type fakeConn struct {
	network.Conn
	remote ma.Multiaddr
}

func (c fakeConn) RemoteMultiaddr() ma.Multiaddr { return c.remote }
func (c fakeConn) RemotePeer() peer.ID           { return peer.ID("fake") }

// TestHooks runs every address case through every hook that judges an
// address, and checks InterceptPeerDial never refuses.
func TestHooks(t *testing.T) {
	p, err := peer.Decode(destID)
	if err != nil {
		t.Fatal(err)
	}
	hooks := []struct {
		name string
		call func(f *Filters, a ma.Multiaddr) bool
	}{
		{"InterceptAddrDial", func(f *Filters, a ma.Multiaddr) bool { return f.InterceptAddrDial(p, a) }},
		{"InterceptAccept", func(f *Filters, a ma.Multiaddr) bool { return f.InterceptAccept(fakeConnAddrs{a}) }},
		{"InterceptSecured/inbound", func(f *Filters, a ma.Multiaddr) bool {
			return f.InterceptSecured(network.DirInbound, p, fakeConnAddrs{a})
		}},
		{"InterceptSecured/outbound", func(f *Filters, a ma.Multiaddr) bool {
			return f.InterceptSecured(network.DirOutbound, p, fakeConnAddrs{a})
		}},
		{"InterceptUpgraded", func(f *Filters, a ma.Multiaddr) bool {
			ok, reason := f.InterceptUpgraded(fakeConn{remote: a})
			if reason != 0 {
				t.Errorf("InterceptUpgraded reason = %d, want 0", reason)
			}
			return ok
		}},
	}
	for _, h := range hooks {
		for _, tt := range addrCases {
			t.Run(h.name+"/"+tt.name, func(t *testing.T) {
				f := mustFilters(t, tt.rules[0], tt.rules[1])
				a := ma.StringCast(tt.addr)
				if got := h.call(f, a); got != tt.want {
					t.Fatalf("deny %v allow %v: %s(%s) = %v, want %v", tt.rules[0], tt.rules[1], h.name, a, got, tt.want)
				}
			})
		}
	}

	t.Run("InterceptPeerDial", func(t *testing.T) {
		for _, rules := range [][2][]string{noFilters, denyTen, allowTen, {{"0.0.0.0/0", "::/0"}, nil}} {
			f := mustFilters(t, rules[0], rules[1])
			if !f.InterceptPeerDial(p) {
				t.Fatalf("deny %v allow %v: InterceptPeerDial refused a peer", rules[0], rules[1])
			}
		}
	})
}

func TestFilterAddrs(t *testing.T) {
	addrs := func(ss ...string) []ma.Multiaddr {
		out := make([]ma.Multiaddr, 0, len(ss))
		for _, s := range ss {
			out = append(out, ma.StringCast(s))
		}
		return out
	}
	mixed := addrs(
		"/ip4/10.0.0.1/tcp/1",
		"/ip4/192.168.0.1/tcp/1",
		"/ip6/::ffff:10.0.0.2/tcp/1",
		"/dns4/example.com/tcp/1",
		"/ip6/fd00::1/udp/1/quic-v1",
		"/ip4/10.0.0.3/tcp/1/p2p/"+relayID+"/p2p-circuit",
	)
	tests := []struct {
		name  string
		rules [2][]string
		in    []ma.Multiaddr
		want  []ma.Multiaddr // nil means the result must be nil
	}{
		{name: "nil stays nil", rules: denyTen, in: nil, want: nil},
		{name: "empty stays empty and non-nil", rules: denyTen, in: []ma.Multiaddr{}, want: []ma.Multiaddr{}},
		{name: "no filters keep everything", rules: noFilters, in: mixed, want: mixed},
		{
			name: "deny drops ten and keeps order", rules: denyTen, in: mixed,
			want: addrs("/ip4/192.168.0.1/tcp/1", "/dns4/example.com/tcp/1", "/ip6/fd00::1/udp/1/quic-v1"),
		},
		{
			name: "allow keeps ten only", rules: allowTen, in: mixed,
			want: addrs("/ip4/10.0.0.1/tcp/1", "/ip6/::ffff:10.0.0.2/tcp/1", "/ip4/10.0.0.3/tcp/1/p2p/"+relayID+"/p2p-circuit"),
		},
		{
			name: "everything refused gives empty non-nil", rules: [2][]string{nil, {"203.0.113.0/24"}}, in: mixed,
			want: []ma.Multiaddr{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustFilters(t, tt.rules[0], tt.rules[1])
			before := slices.Clone(tt.in)
			got := f.FilterAddrs(tt.in)
			if (got == nil) != (tt.want == nil) {
				t.Fatalf("FilterAddrs nil-ness: got %#v, want %#v", got, tt.want)
			}
			if !slices.EqualFunc(got, tt.want, func(a, b ma.Multiaddr) bool { return a.Equal(b) }) {
				t.Fatalf("FilterAddrs = %v, want %v", got, tt.want)
			}
			if !slices.EqualFunc(tt.in, before, func(a, b ma.Multiaddr) bool { return a.Equal(b) }) {
				t.Fatalf("FilterAddrs modified its input: now %v, was %v", tt.in, before)
			}
			if len(got) > 0 && len(tt.in) > 0 && &got[0] == &tt.in[0] {
				t.Fatal("FilterAddrs returned its input slice instead of a new one")
			}
		})
	}
}

func TestEmptyRulesAndNil(t *testing.T) {
	var nilF *Filters
	if !nilF.Empty() || !nilF.AddrAllowed(ma.StringCast("/ip4/10.0.0.1/tcp/1")) {
		t.Fatal("a nil *Filters must be empty and allow everything")
	}
	if ok, _ := nilF.InterceptUpgraded(fakeConn{remote: ma.StringCast("/ip4/10.0.0.1/tcp/1")}); !ok {
		t.Fatal("a nil *Filters refused a connection")
	}
	empty, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if !empty.Empty() {
		t.Fatal("New() without options is not empty")
	}
	if got := empty.String(); got != "no address filters" {
		t.Fatalf("String() = %q", got)
	}

	f := mustFilters(t,
		[]string{"10.0.0.1/8", "10.0.0.0/8", "::ffff:192.168.0.0/112"},
		[]string{"fd00::/8"})
	if f.Empty() {
		t.Fatal("filters with ranges report Empty")
	}
	deny, allow := f.Rules()
	wantDeny := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.0.0/16")}
	if !slices.Equal(deny, wantDeny) {
		t.Fatalf("deny rules = %v, want %v (masked, deduplicated, unmapped)", deny, wantDeny)
	}
	if want := []netip.Prefix{netip.MustParsePrefix("fd00::/8")}; !slices.Equal(allow, want) {
		t.Fatalf("allow rules = %v, want %v", allow, want)
	}
	deny[0] = netip.MustParsePrefix("1.0.0.0/8")
	if again, _ := f.Rules(); again[0] != wantDeny[0] {
		t.Fatal("Rules returned the internal slice; changing it changed the filters")
	}
	if got, want := f.String(), "deny [10.0.0.0/8 192.168.0.0/16] allow [fd00::/8]"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
}

// BenchmarkAddrAllowed measures the gater's per-address cost with a
// daemon-sized rule set.
func BenchmarkAddrAllowed(b *testing.B) {
	var opts []Option
	for i := range 16 {
		opts = append(opts, Deny(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 0}), 16)))
	}
	opts = append(opts, Allow(netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")))
	f, err := New(opts...)
	if err != nil {
		b.Fatal(err)
	}
	a := ma.StringCast("/ip4/10.200.1.1/tcp/4001/p2p/" + destID)
	b.ReportAllocs()
	for b.Loop() {
		if !f.AddrAllowed(a) {
			b.Fatal("refused")
		}
	}
}
