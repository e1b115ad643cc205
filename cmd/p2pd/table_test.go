package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/p2pd/p2pd/api"
	"github.com/p2pd/p2pd/client"
)

var update = flag.Bool("update", false, "rewrite the golden files of the text outputs")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\n--- got\n%s--- want\n%s", name, got, want)
	}
}

const (
	peerA = "12D3KooWAEYtYAwFkN95p97zyuV2QZWDUnuY2fcbvMDtX7C9bUqF"
	peerB = "12D3KooWKfNxZ4o7eQaYZMS94cTjyDxKdns5h5ZehhQ3fh5A1iY8"
	self  = "12D3KooWFb7ic988thmtVJBMJwNm4CstQ7gDdkRG3T8nVPVsFqUH"
)

var goldenNow = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

func sampleListeners() []api.Listener {
	failedAt := goldenNow.Add(-3 * time.Minute)
	refusedAt := goldenNow.Add(-42 * time.Second)
	return []api.Listener{
		{Kind: api.KindForward, Protocol: "/x/ssh", ListenAddress: "/ip4/127.0.0.1/tcp/2222",
			TargetAddress: "/p2p/" + peerA, State: api.StateActive, AllowedPeers: []string{},
			LastError: "refused by " + peerA + ": not in the listener's --allow-peer list", LastErrorAt: &refusedAt},
		{Kind: api.KindForward, Protocol: "/x/web", ListenAddress: "/ip4/0.0.0.0/tcp/8080",
			TargetAddress: "@my-team", Pick: api.PickRoundRobin, Peer: peerB, Candidates: []string{peerA, peerB},
			State: api.StateActive, AllowedPeers: []string{}},
		{Kind: api.KindListen, Protocol: "/x/ssh", ListenAddress: "/p2p/" + self,
			TargetAddress: "/ip4/127.0.0.1/tcp/22", State: api.StateActive, AllowedPeers: []string{peerA, peerB}},
		{Kind: api.KindListen, Protocol: "/x/db", ListenAddress: "/p2p/" + self,
			TargetAddress: "/ip4/127.0.0.1/tcp/5432", State: api.StateFailed, AllowedPeers: []string{},
			LastError: "protocol is already served by this node: /x/db", LastErrorAt: &failedAt},
	}
}

func sampleStreams() []api.Stream {
	in, out, dropped := uint64(12), uint64(9), uint64(0)
	return []api.Stream{
		{ID: 0, Protocol: "/x/ssh", OriginAddress: "/ip4/127.0.0.1/tcp/51234", TargetAddress: "/p2p/" + peerA,
			Peer: peerA, BytesIn: 3 << 20, BytesOut: 2048, Started: goldenNow.Add(-75 * time.Minute)},
		{ID: 3, Protocol: "/x/dns", OriginAddress: "/ip4/127.0.0.1/udp/40000", TargetAddress: "/p2p/" + peerB,
			Peer: peerB, BytesIn: 900, BytesOut: 700, Started: goldenNow.Add(-9 * time.Second),
			DatagramsIn: &in, DatagramsOut: &out, Dropped: &dropped},
	}
}

func TestListenersText(t *testing.T) {
	for _, tty := range []bool{true, false} {
		var out, errs bytes.Buffer
		writeListeners(&out, &errs, sampleListeners(), tty, goldenNow)
		name := "ls_piped"
		if tty {
			name = "ls_terminal"
			if errs.Len() != 0 {
				t.Errorf("on a terminal ls wrote to stderr: %q", errs.String())
			}
		} else {
			golden(t, name+"_stderr.golden", errs.Bytes())
		}
		golden(t, name+".golden", out.Bytes())
	}
	var out bytes.Buffer
	writeListeners(&out, &out, nil, true, goldenNow)
	golden(t, "ls_terminal_empty.golden", out.Bytes())
	out.Reset()
	writeListeners(&out, &out, nil, false, goldenNow)
	if out.Len() != 0 {
		t.Errorf("piped, an empty ls printed %q", out.String())
	}
}

func TestStreamsText(t *testing.T) {
	for _, tty := range []bool{true, false} {
		var out bytes.Buffer
		writeStreams(&out, sampleStreams(), tty, goldenNow)
		name := "streams_piped.golden"
		if tty {
			name = "streams_terminal.golden"
		}
		golden(t, name, out.Bytes())
	}
}

func TestTextHelpers(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{closedText(1, "listener"), "closed 1 listener"},
		{closedText(0, "listener"), "closed 0 listeners"},
		{closedText(3, "stream"), "closed 3 streams"},
		{bytesText(0), "0 B"},
		{bytesText(1023), "1023 B"},
		{bytesText(1536), "1.5 KiB"},
		{bytesText(5 << 30), "5.0 GiB"},
		{ago(goldenNow.Add(-500*time.Millisecond), goldenNow), "just now"},
		{ago(goldenNow.Add(-90*time.Minute), goldenNow), "1h ago"},
		{ago(goldenNow.Add(-72*time.Hour), goldenNow), "3d ago"},
		{age(goldenNow.Add(-61*time.Second), goldenNow), "1m01s"},
		{shortPeer(peerA), "12D3KooW…C9bUqF"},
		{shortenIDs("/ip4/1.2.3.4/tcp/1/p2p/" + peerA + " and Qm" + peerA[8:52]), "/ip4/1.2.3.4/tcp/1/p2p/12D3KooW…C9bUqF and Qm" + peerA[8:14] + "…" + peerA[46:52]},
		{describeMatch(api.CloseRequest{Protocol: "/x/typo", TargetAddress: "@x"}), "-p /x/typo -t @x"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

// TestTunnelErrorHints checks each daemon error that gets a next step,
// and that the SPEC.md text stays at the start of the message.
func TestTunnelErrorHints(t *testing.T) {
	apiErr := func(msg string) error { return &client.Error{Status: 400, Code: api.CodeBadRequest, Message: msg} }
	tests := []struct {
		err            error
		protocol, addr string
		want           string
	}{
		{apiErr("listener already registered"), "/x/ssh", "",
			"listener already registered for /x/ssh (close it with `p2pd close -p /x/ssh`)"},
		{apiErr("protocol name must be within '/x/' namespace"), "/ssh", "",
			"protocol name must be within '/x/' namespace: the protocol must start with /x/ (try /x/ssh, or pass --allow-custom-protocol)"},
		{apiErr("protocol name must be within '/x/' namespace"), "web", "/ip4/127.0.0.1/tcp/8080",
			"protocol name must be within '/x/' namespace: the protocol must start with /x/ (try /x/web, or pass --allow-custom-protocol)"},
		{apiErr("port can not be 0"), "/x/ssh", "",
			"port can not be 0 (a listen dials a running service: give its port, e.g. 22)"},
		{apiErr("protocol is already served by this node: /ipfs/ping/1.0.0"), "/ipfs/ping/1.0.0", "",
			"protocol is already served by this node: /ipfs/ping/1.0.0 (p2pd itself speaks it: pick a name under /x/)"},
		{apiErr("address /ip4/127.0.0.1/tcp/8080 is already in use"), "/x/web", "/ip4/127.0.0.1/tcp/8080",
			"port 8080 is already in use (pick another, or 0 for any)"},
		{apiErr("address /ip4/127.0.0.1/udp/5353 is already in use"), "/x/dns", "/ip4/127.0.0.1/udp/5353",
			"port 5353 is already in use (pick another, or 0 for any)"},
		{apiErr("something else"), "/x/web", "", "something else"},
		{errors.New("not an API error"), "/x/web", "", "not an API error"},
	}
	for _, tt := range tests {
		if got := explainTunnel(tt.err, tt.protocol, tt.addr).Error(); got != tt.want {
			t.Errorf("%q:\n got %q\nwant %q", tt.err, got, tt.want)
		}
	}
}

// TestListenersTextOneLineEach is the `ls` side of item 11 of issue 11: a
// protocol name with a newline or an escape sequence (from a tunnels.json
// written before names were checked) stays one quoted field of one line.
func TestListenersTextOneLineEach(t *testing.T) {
	ls := []api.Listener{
		{Kind: api.KindListen, Protocol: "/x/a\n/x/b", ListenAddress: "/p2p/12D3KooWAEYtYAwFkN95p97zyuV2QZWDUnuY2fcbvMDtX7C9bUqF", TargetAddress: "/ip4/127.0.0.1/tcp/22", State: api.StateFailed, LastError: "invalid protocol name"},
		{Kind: api.KindListen, Protocol: "/x/\x1b[2J", ListenAddress: "/p2p/12D3KooWAEYtYAwFkN95p97zyuV2QZWDUnuY2fcbvMDtX7C9bUqF", TargetAddress: "/ip4/127.0.0.1/tcp/23"},
	}
	for _, tty := range []bool{false, true} {
		var out, errs bytes.Buffer
		writeListeners(&out, &errs, ls, tty, goldenNow)
		lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		want := len(ls)
		if tty {
			want++ // the header
		}
		if len(lines) != want || strings.Contains(out.String(), "\x1b") {
			t.Fatalf("tty %t: %d lines, want %d:\n%s", tty, len(lines), want, out.String())
		}
		if !strings.Contains(out.String(), `"/x/a\n/x/b"`) {
			t.Fatalf("tty %t: the name is not shown quoted:\n%s", tty, out.String())
		}
		if strings.Count(errs.String(), "\n") != strings.Count(errs.String(), "failed to restore") {
			t.Fatalf("tty %t: stderr lines split: %q", tty, errs.String())
		}
	}
}
