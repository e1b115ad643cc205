package discovery

import (
	"testing"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

func TestOptions(t *testing.T) {
	h := newHost(t)
	t.Cleanup(func() { h.Close() })
	other := newHost(t)
	t.Cleanup(func() { other.Close() })
	good := info(other)
	noAddr := peer.AddrInfo{ID: other.ID()}
	keep := func(a []ma.Multiaddr) []ma.Multiaddr { return a }

	tests := []struct {
		name    string
		opts    []Option
		wantErr string
		check   func(*testing.T, config)
	}{
		{name: "defaults", check: func(t *testing.T, c config) {
			if c.mode != ModeAuto || c.prefix != "/ipfs" || !c.mdns {
				t.Errorf("defaults: mode %q prefix %q mdns %v", c.mode, c.prefix, c.mdns)
			}
			if got, want := len(c.bootstrapPeers()), len(dht.GetDefaultBootstrapPeerAddrInfos()); got != want || got == 0 {
				t.Errorf("default bootstrap peers: got %d, want the %d public ones", got, want)
			}
		}},
		{name: "mode auto", opts: []Option{Mode("auto")}, check: wantMode("auto", dht.ModeAutoServer)},
		{name: "mode server", opts: []Option{Mode("server")}, check: wantMode("server", dht.ModeServer)},
		{name: "mode client", opts: []Option{Mode("client")}, check: wantMode("client", dht.ModeClient)},
		{name: "mode off", opts: []Option{Mode("off")}, check: func(t *testing.T, c config) {
			if c.mode != ModeOff {
				t.Errorf("mode %q, want off", c.mode)
			}
		}},
		{name: "mode unknown", opts: []Option{Mode("foo")}, wantErr: `unknown DHT mode "foo": want auto, server, client or off`},
		{name: "mode empty", opts: []Option{Mode("")}, wantErr: `unknown DHT mode "": want auto, server, client or off`},
		{name: "mode is case-sensitive", opts: []Option{Mode("Server")}, wantErr: `unknown DHT mode "Server": want auto, server, client or off`},
		{name: "prefix", opts: []Option{ProtocolPrefix("/p2pd")}, check: func(t *testing.T, c config) {
			if c.prefix != "/p2pd" {
				t.Errorf("prefix %q", c.prefix)
			}
		}},
		{name: "prefix two segments", opts: []Option{ProtocolPrefix("/my/net")}},
		{name: "prefix without slash", opts: []Option{ProtocolPrefix("p2pd")}, wantErr: `invalid DHT protocol prefix "p2pd": must start with "/"`},
		{name: "prefix empty", opts: []Option{ProtocolPrefix("")}, wantErr: `invalid DHT protocol prefix "": must start with "/"`},
		{name: "prefix slash only", opts: []Option{ProtocolPrefix("/")}, wantErr: `invalid DHT protocol prefix "/": must not end with "/"`},
		{name: "prefix trailing slash", opts: []Option{ProtocolPrefix("/p2pd/")}, wantErr: `invalid DHT protocol prefix "/p2pd/": must not end with "/"`},
		{name: "prefix empty segment", opts: []Option{ProtocolPrefix("/a//b")}, wantErr: `invalid DHT protocol prefix "/a//b": must not contain an empty segment`},
		{name: "prefix space", opts: []Option{ProtocolPrefix("/a b")}, wantErr: `invalid DHT protocol prefix "/a b": must not contain white space or control characters`},
		{name: "bootstrap peers", opts: []Option{BootstrapPeers(good), BootstrapPeers(good)}, check: func(t *testing.T, c config) {
			if got := len(c.bootstrapPeers()); got != 2 {
				t.Errorf("bootstrap peers: got %d, want 2 (calls add up)", got)
			}
		}},
		{name: "no bootstrap", opts: []Option{NoBootstrap()}, check: func(t *testing.T, c config) {
			if got := c.bootstrapPeers(); len(got) != 0 {
				t.Errorf("NoBootstrap: got %d peers", len(got))
			}
		}},
		{name: "bootstrap peers empty", opts: []Option{BootstrapPeers()}, wantErr: "no bootstrap peers given: use NoBootstrap() for none"},
		{name: "bootstrap peer without address", opts: []Option{BootstrapPeers(noAddr)}, wantErr: "bootstrap peer " + other.ID().String() + " has no address"},
		{name: "bootstrap peer without id", opts: []Option{BootstrapPeers(peer.AddrInfo{Addrs: good.Addrs})}, wantErr: "invalid bootstrap peer: empty peer ID"},
		{name: "no bootstrap then peers", opts: []Option{NoBootstrap(), BootstrapPeers(good)}, wantErr: "bootstrap peers given together with NoBootstrap()"},
		{name: "peers then no bootstrap", opts: []Option{BootstrapPeers(good), NoBootstrap()}, wantErr: "NoBootstrap() given together with bootstrap peers"},
		{name: "mdns off", opts: []Option{MDNS(false)}, check: func(t *testing.T, c config) {
			if c.mdns {
				t.Error("mdns still on")
			}
		}},
		{name: "addr filter", opts: []Option{AddrFilter(keep)}},
		{name: "addr filter nil", opts: []Option{AddrFilter(nil)}, wantErr: "address filter is nil"},
		{name: "peer found nil", opts: []Option{OnPeerFound(nil)}, wantErr: "peer-found callback is nil"},
		{name: "connect timeout zero", opts: []Option{ConnectTimeout(0)}, wantErr: "connect timeout 0s: must be positive"},
		{name: "find interval inverted", opts: []Option{FindInterval(2*time.Second, time.Second)}, wantErr: "find interval 2s..1s: want 0 < min <= max"},
		{name: "advertise interval zero", opts: []Option{AdvertiseInterval(0)}, wantErr: "advertise interval 0s: must be positive"},
		{name: "advertise interval", opts: []Option{AdvertiseInterval(time.Hour)}, check: func(t *testing.T, c config) {
			if c.advertiseMinI != time.Hour {
				t.Errorf("advertise interval: got %v", c.advertiseMinI)
			}
		}},
		{name: "find interval zero", opts: []Option{FindInterval(0, time.Second)}, wantErr: "find interval 0s..1s: want 0 < min <= max"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(h, tt.opts...)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("New: got error %v, want %q", err, tt.wantErr)
				}
				if s != nil {
					t.Fatal("New returned a service along with an error")
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if tt.check != nil {
				tt.check(t, s.cfg)
			}
			if err := s.Close(); err != nil { // never started: nothing to stop
				t.Fatalf("Close: %v", err)
			}
		})
	}
}

func wantMode(name string, want dht.ModeOpt) func(*testing.T, config) {
	return func(t *testing.T, c config) {
		if c.mode != name {
			t.Errorf("mode %q, want %q", c.mode, name)
		}
		if got := dhtMode(c.mode); got != want {
			t.Errorf("dht mode %v, want %v", got, want)
		}
	}
}

func TestNewNilHost(t *testing.T) {
	_, err := New(nil)
	if err == nil || err.Error() != "discovery needs a host: got nil" {
		t.Fatalf("New(nil): got %v", err)
	}
}
