package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"

	ma "github.com/multiformats/go-multiaddr"
	"go.uber.org/goleak"

	"github.com/p2pd/p2pd/api"
	"github.com/p2pd/p2pd/client"
	"github.com/p2pd/p2pd/repo"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Started once per process by libraries and never stopped.
		goleak.IgnoreTopFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
		goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
		goleak.IgnoreAnyFunction("github.com/libp2p/go-libp2p/p2p/transport/quicreuse.(*reuse).gc"),
		goleak.IgnoreTopFunction("github.com/libp2p/go-flow-metrics.(*sweeper).run"),
	)
}

// start runs an in-process daemon on loopback with the DHT in server mode
// and no outside network.
func start(t *testing.T, r *repo.Repo, opts ...Option) *Daemon {
	t.Helper()
	base := []Option{
		ListenAddrs(ma.StringCast("/ip4/127.0.0.1/tcp/0")),
		APIAddr(ma.StringCast("/ip4/127.0.0.1/tcp/0")),
		Bootstrap(), DHT("server", "/daemontest"), MDNS(false),
	}
	d, err := New(r, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func newRepo(t *testing.T) *repo.Repo {
	t.Helper()
	r, err := repo.Init(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestStartPrintsReadinessAndWritesAPIFile(t *testing.T) {
	r := newRepo(t)
	var out bytes.Buffer
	d := start(t, r, Output(&out))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) < 3 || lines[0] != "peer id: "+d.Host().ID().String() ||
		!strings.HasPrefix(lines[1], "listening on: /ip4/127.0.0.1/tcp/") ||
		!strings.HasSuffix(lines[1], "/p2p/"+d.Host().ID().String()) ||
		lines[len(lines)-1] != "api: "+d.APIAddr() {
		t.Fatalf("readiness lines:\n%s", out.String())
	}
	b, err := os.ReadFile(r.File(repo.APIFile))
	if err != nil || strings.TrimSpace(string(b)) != d.APIAddr() {
		t.Fatalf("api file %q (%v)", b, err)
	}
	c, err := client.NewDefaultClient(&client.Config{Repo: r.Path()})
	if err != nil {
		t.Fatal(err)
	}
	id, err := c.ID(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if id.ID != d.Host().ID().String() || !strings.HasPrefix(id.AgentVersion, "p2pd/") {
		t.Fatalf("id: %+v", id)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := os.Stat(r.File(repo.APIFile)); !os.IsNotExist(err) {
		t.Fatalf("api file left after Close: %v", err)
	}
	if _, err := c.ID(context.Background()); !errors.Is(err, client.ErrUnreachable) {
		t.Fatalf("after Close: %v, want ErrUnreachable", err)
	}
}

func TestAPIPortTakenFailsCleanly(t *testing.T) {
	d1 := start(t, newRepo(t))
	r := newRepo(t)
	d2, err := New(r, APIAddr(ma.StringCast(d1.APIAddr())), ListenAddrs(ma.StringCast("/ip4/127.0.0.1/tcp/0")),
		Bootstrap(), DHT("off", "/x"), MDNS(false))
	if err != nil {
		t.Fatal(err)
	}
	err = d2.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "listening for the API on "+d1.APIAddr()) {
		t.Fatalf("got %v", err)
	}
	if _, err := os.Stat(r.File(repo.APIFile)); !os.IsNotExist(err) {
		t.Fatalf("api file written by a daemon that failed to start")
	}
}

func TestErrorShape(t *testing.T) {
	r := newRepo(t)
	d := start(t, r)
	tok, _ := r.Token()
	url := "http://" + strings.Replace(strings.TrimPrefix(d.APIAddr(), "/ip4/"), "/tcp/", ":", 1)
	tests := []struct {
		name, method, path, body string
		status                   int
		code, msg                string
	}{
		{"unknown route", "GET", "/api/v1/nope", "", 404, api.CodeNotFound, "no such API route: GET /api/v1/nope"},
		{"unknown field", "POST", api.RouteConnect, `{"addr":"x"}`, 400, api.CodeBadRequest, `invalid request body: json: unknown field "addr"`},
		{"bad address", "POST", api.RouteConnect, `{"address":"/ip4/1.2.3.4"}`, 400, api.CodeBadRequest, `invalid address "/ip4/1.2.3.4": want a multiaddr ending in /p2p/<peer id>`},
		{"empty rendezvous", "POST", api.RouteFind, `{}`, 400, api.CodeBadRequest, "rendezvous string is empty"},
		{"stream close neither", "POST", api.RouteStreamsClose, `{}`, 400, api.CodeBadRequest, "no id specified"},
		{"stream close unknown", "POST", api.RouteStreamsClose, `{"id":7}`, 404, api.CodeNotFound, "no stream with id 7"},
		{"close no filter", "POST", api.RouteClose, `{}`, 400, api.CodeBadRequest, "no matching options given"},
		{"listen port 0", "POST", api.RouteListen, `{"protocol":"/x/a","target_address":"/ip4/127.0.0.1/tcp/0"}`, 400, api.CodeBadRequest, "port can not be 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, url+tt.path, strings.NewReader(tt.body))
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e api.Error
			if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.status || e.Code != tt.code || e.Message != tt.msg {
				t.Fatalf("got %d %+v, want %d %s %q", resp.StatusCode, e, tt.status, tt.code, tt.msg)
			}
		})
	}
}

func TestEmptyListsAreArrays(t *testing.T) {
	r := newRepo(t)
	d := start(t, r)
	tok, _ := r.Token()
	url := "http://" + strings.Replace(strings.TrimPrefix(d.APIAddr(), "/ip4/"), "/tcp/", ":", 1)
	for _, path := range []string{api.RoutePeers, api.RouteListeners, api.RouteStreams} {
		req, _ := http.NewRequest("GET", url+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		buf.ReadFrom(resp.Body)
		resp.Body.Close()
		if strings.TrimSpace(buf.String()) != "[]" {
			t.Errorf("%s answered %q, want []", path, buf.String())
		}
	}
}

func TestUnrestorableTunnelIsKept(t *testing.T) {
	r := newRepo(t)
	// A forward whose port cannot be bound (its address is not local) and a
	// listen that is fine.
	f := tunnelsFile{Version: 1, Tunnels: []savedTunnel{
		{Kind: "forward", Protocol: "/x/a", ListenAddress: "/ip4/192.0.2.1/tcp/9", TargetAddress: "/p2p/12D3KooWAEYtYAwFkN95p97zyuV2QZWDUnuY2fcbvMDtX7C9bUqF"},
		{Kind: "listen", Protocol: "/x/b", TargetAddress: "/ip4/127.0.0.1/tcp/9"},
	}}
	if err := r.WriteJSON(repo.TunnelsFile, f); err != nil {
		t.Fatal(err)
	}
	d := start(t, r)
	if got := d.listeners.List(); len(got) != 1 || got[0].Protocol != "/x/b" {
		t.Fatalf("restored: %+v", got)
	}
	var after tunnelsFile
	if err := r.ReadJSON(repo.TunnelsFile, &after); err != nil {
		t.Fatal(err)
	}
	if len(after.Tunnels) != 2 {
		t.Fatalf("tunnels.json lost an entry: %+v", after)
	}
	d.Close()
	if err := r.ReadJSON(repo.TunnelsFile, &after); err != nil || len(after.Tunnels) != 2 {
		t.Fatalf("tunnels.json after shutdown: %+v %v", after, err)
	}
}

func TestTokenRotationWithoutRestart(t *testing.T) {
	r := newRepo(t)
	start(t, r)
	c, err := client.NewDefaultClient(&client.Config{Repo: r.Path()})
	if err != nil {
		t.Fatal(err)
	}
	old, _ := r.Token()
	oldClient, _ := client.NewDefaultClient(&client.Config{Repo: r.Path(), Token: old})
	if _, err := c.ID(context.Background()); err != nil {
		t.Fatal(err)
	}
	newTok := strings.Repeat("ab", 32)
	if err := os.WriteFile(r.File(repo.TokenFile), []byte(newTok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ID(context.Background()); err != nil {
		t.Fatalf("file-token client after rotation: %v", err)
	}
	if _, err := oldClient.ID(context.Background()); !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("old token after rotation: %v, want ErrUnauthorized", err)
	}
	c.CloseIdleConnections()
	oldClient.CloseIdleConnections()
}

func TestPprofNamedProfiles(t *testing.T) {
	r := newRepo(t)
	d := start(t, r)
	tok, _ := r.Token()
	url := "http://" + strings.Replace(strings.TrimPrefix(d.APIAddr(), "/ip4/"), "/tcp/", ":", 1)
	req, _ := http.NewRequest("GET", url+api.RouteDebugPprof+"/goroutine?debug=1", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(buf.String(), "goroutine profile: total") {
		t.Fatalf("status %d, body starts %q", resp.StatusCode, buf.String()[:min(80, buf.Len())])
	}
}

func TestListenPortTakenIsAnError(t *testing.T) {
	// Hold a TCP and a UDP port the way another daemon would.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	uport := pc.LocalAddr().(*net.UDPAddr).Port
	for _, addr := range []string{
		fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port),
		fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", uport),
	} {
		r := newRepo(t)
		d, err := New(r, ListenAddrs(ma.StringCast(addr)), APIAddr(ma.StringCast("/ip4/127.0.0.1/tcp/0")),
			Bootstrap(), DHT("off", "/x"), MDNS(false))
		if err != nil {
			t.Fatal(err)
		}
		err = d.Start(context.Background())
		want := "listen address " + addr + " is already in use"
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: got %v, want %q", addr, err, want)
		}
	}
}
