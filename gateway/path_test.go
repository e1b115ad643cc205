package gateway

import (
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
)

func TestParsePath(t *testing.T) {
	const id = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"
	pid, err := peer.Decode(id)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path         string
		peer         peer.ID
		name         string
		proto        protocol.ID
		prefix, rest string
		wantErr      string
	}{
		{path: "/p2p/" + id + "/http/index.html", peer: pid, proto: "/http", prefix: "/p2p/" + id + "/http", rest: "/index.html"},
		{path: "/p2p/" + id + "/http", peer: pid, proto: "/http", prefix: "/p2p/" + id + "/http", rest: "/"},
		{path: "/p2p/" + id + "/http/", peer: pid, proto: "/http", prefix: "/p2p/" + id + "/http", rest: "/"},
		{path: "/p2p/" + id + "/x/web/http/a/b/", peer: pid, proto: "/x/web", prefix: "/p2p/" + id + "/x/web/http", rest: "/a/b/"},
		{path: "/p2p/" + id + "/x/web/1.0/http/a", peer: pid, proto: "/x/web/1.0", prefix: "/p2p/" + id + "/x/web/1.0/http", rest: "/a"},
		{path: "/p2p/" + id + "/x/web/http/x/http/y", peer: pid, proto: "/x/web", prefix: "/p2p/" + id + "/x/web/http", rest: "/x/http/y"},
		{path: "/p2p/" + id + "/x/http/http/", peer: pid, proto: "/x/http", prefix: "/p2p/" + id + "/x/http/http", rest: "/"},
		{path: "/p2p/" + id + "/x/w%C3%A9b/http/a%2Fb", peer: pid, proto: "/x/wéb", prefix: "/p2p/" + id + "/x/w%C3%A9b/http", rest: "/a%2Fb"},
		{path: "/p2p/" + id + "/x/w%20b/http/", wantErr: "white space"},
		{path: "/p2p/" + id + "/x/w%0Ab/http/", wantErr: "white space"},
		{path: "/p2p/" + id + "/x/w%01b/http/", wantErr: "control or non-printable"},
		{path: "/p2p/@team/x/web/http/", name: "team", proto: "/x/web", prefix: "/p2p/@team/x/web/http", rest: "/"},

		{path: "/", wantErr: "want /p2p/PEER/http/PATH"},
		{path: "/ipfs/" + id, wantErr: "want /p2p/PEER/http/PATH"},
		{path: "/p2p/", wantErr: `invalid peer ID ""`},
		{path: "/p2p/notapeer/http/", wantErr: `invalid peer ID "notapeer"`},
		{path: "/p2p/@/http/", wantErr: "empty rendezvous name"},
		{path: "/p2p/@a%07b/http/", wantErr: "@NAME: "},
		{path: "/p2p/" + id, wantErr: "want /p2p/PEER/http/PATH"},
		{path: "/p2p/" + id + "/", wantErr: "want /p2p/PEER/http/PATH"},
		{path: "/p2p/" + id + "/https/", wantErr: "want /p2p/PEER/http/PATH"},
		{path: "/p2p/" + id + "/x/web", wantErr: "no /http segment after the protocol"},
		{path: "/p2p/" + id + "/x/http", wantErr: "no /http segment after the protocol"},
		{path: "/p2p/" + id + "/x//http/", wantErr: "empty protocol name"},
		{path: "/p2p/" + id + "/x", wantErr: "empty protocol name"},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			got, err := parsePath(tc.path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.peer != tc.peer || got.name != tc.name || got.proto != tc.proto || got.prefix != tc.prefix || got.rest != tc.rest {
				t.Fatalf("got peer %s name %q proto %s prefix %s rest %s\nwant peer %s name %q proto %s prefix %s rest %s",
					got.peer, got.name, got.proto, got.prefix, got.rest, tc.peer, tc.name, tc.proto, tc.prefix, tc.rest)
			}
		})
	}
}

func TestCheckAddr(t *testing.T) {
	tests := []struct {
		addr    string
		remote  bool
		wantErr string
	}{
		{addr: "/ip4/127.0.0.1/tcp/8080"},
		{addr: "/ip6/::1/tcp/0"},
		{addr: "/ip4/0.0.0.0/tcp/8080", wantErr: "is not a loopback address"},
		{addr: "/ip4/0.0.0.0/tcp/8080", remote: true},
		{addr: "/ip4/127.0.0.1/udp/8080", wantErr: "want /ip4/HOST/tcp/PORT"},
		{addr: "/unix/tmp/gw.sock", wantErr: "want /ip4/HOST/tcp/PORT"},
		{addr: "/dns4/localhost/tcp/8080", wantErr: "want /ip4/HOST/tcp/PORT"},
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			a, err := ma.NewMultiaddr(tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			err = CheckAddr(a, tc.remote)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("CheckAddr(%s, %v) = %v, want error containing %q", tc.addr, tc.remote, err, tc.wantErr)
			}
		})
	}
}

func TestLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LOCALHOST:8080": true, "app.localhost:1": true, "127.0.0.1:8080": true,
		"127.1.2.3": true, "[::1]:80": true, "::1": true, "localhost.": true,
		"": false, "example.com": false, "10.0.0.1:80": false, "localhost.example.com": false, "[::2]:80": false,
	} {
		if got := loopbackHost(host); got != want {
			t.Errorf("loopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}
