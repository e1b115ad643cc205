package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/p2pd/p2pd/api"
	"github.com/p2pd/p2pd/client"
	"github.com/p2pd/p2pd/listeners"
	"github.com/p2pd/p2pd/repo"
)

// somePeer is a valid peer ID nobody runs.
const somePeer = "12D3KooWAEYtYAwFkN95p97zyuV2QZWDUnuY2fcbvMDtX7C9bUqF"

func apiClient(t *testing.T, r *repo.Repo) client.Client {
	t.Helper()
	c, err := client.NewDefaultClient(&client.Config{Repo: r.Path()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// rawTunnels is tunnels.json with its entries left undecoded.
type rawTunnels struct {
	Version int               `json:"version"`
	Tunnels []json.RawMessage `json:"tunnels"`
}

func readRaw(t *testing.T, r *repo.Repo) rawTunnels {
	t.Helper()
	var f rawTunnels
	b, err := os.ReadFile(r.File(repo.TunnelsFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("tunnels.json: %v\n%s", err, b)
	}
	return f
}

// compact is b without insignificant whitespace.
func compact(t *testing.T, b []byte) string {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// TestOneBadEntryKeepsTheRest: entries of tunnels.json that do not decode
// (a wrong type, an unknown field a newer p2pd might write, an unknown
// kind) are skipped and kept in the file as they were; the good ones are
// restored and saved beside them.
func TestOneBadEntryKeepsTheRest(t *testing.T) {
	r := newRepo(t)
	bad := []string{
		`{"kind":"listen","protocol":5,"target_address":"/ip4/127.0.0.1/tcp/9"}`,
		`{"kind":"listen","protocol":"/x/new","target_address":"/ip4/127.0.0.1/tcp/9","from_the_future":true}`,
		`{"kind":"udp-forward","protocol":"/x/u","target_address":"/ip4/127.0.0.1/udp/9"}`,
	}
	file := `{"version":1,"tunnels":[` +
		`{"kind":"listen","protocol":"/x/good1","target_address":"/ip4/127.0.0.1/tcp/9"},` +
		strings.Join(bad, ",") + `,` +
		`{"kind":"listen","protocol":"/x/good2","target_address":"/ip4/127.0.0.1/tcp/10"}]}`
	if err := os.WriteFile(r.File(repo.TunnelsFile), []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	d := start(t, r)
	var got []string
	for _, i := range d.listeners.List() {
		got = append(got, string(i.Protocol))
	}
	if !slices.Equal(got, []string{"/x/good1", "/x/good2"}) {
		t.Fatalf("restored %v, want the two good entries", got)
	}
	// A change rewrites the file: the bad entries are still there, as they were.
	if _, err := apiClient(t, r).Listen(context.Background(), api.ListenRequest{Protocol: "/x/good3", Target: "/ip4/127.0.0.1/tcp/11"}); err != nil {
		t.Fatal(err)
	}
	var entries []string
	for _, e := range readRaw(t, r).Tunnels {
		entries = append(entries, compact(t, e))
	}
	for _, b := range bad {
		if !slices.Contains(entries, b) {
			t.Errorf("bad entry %s lost or changed; file has %v", b, entries)
		}
	}
	if len(entries) != 6 {
		t.Errorf("file has %d entries, want 3 good and 3 bad: %v", len(entries), entries)
	}
}

// TestUnreadableTunnelsFileMovedAside: a tunnels.json that is not JSON is
// moved to tunnels.json.bad-TIMESTAMP untouched, the daemon starts, and
// tunnels added later are saved in a new tunnels.json.
func TestUnreadableTunnelsFileMovedAside(t *testing.T) {
	r := newRepo(t)
	garbage := []byte("{\"version\":1,\"tunnels\":[{\"kind\":")
	if err := os.WriteFile(r.File(repo.TunnelsFile), garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	aside, _ := filepath.Glob(r.File(repo.TunnelsFile + ".bad-*"))
	if len(aside) != 1 {
		t.Fatalf("moved-aside files: %v", aside)
	}
	if b, err := os.ReadFile(aside[0]); err != nil || !bytes.Equal(b, garbage) {
		t.Fatalf("%s holds %q (%v), want the unreadable file as it was", aside[0], b, err)
	}
	if _, err := apiClient(t, r).Listen(context.Background(), api.ListenRequest{Protocol: "/x/after", Target: "/ip4/127.0.0.1/tcp/9"}); err != nil {
		t.Fatal(err)
	}
	var f tunnelsFile
	if err := r.ReadJSON(repo.TunnelsFile, &f); err != nil || len(f.Tunnels) != 1 || f.Tunnels[0].Protocol != "/x/after" {
		t.Fatalf("tunnels.json after a listen: %+v (%v)", f, err)
	}
}

// TestFailedSaveFailsTheCall: when tunnels.json cannot be written, listen
// and forward fail with the reason and leave no tunnel behind, close says
// its change is not saved, and everything works again once the file can be
// written.
func TestFailedSaveFailsTheCall(t *testing.T) {
	r := newRepo(t)
	d := start(t, r)
	c := apiClient(t, r)
	ctx := context.Background()
	if _, err := c.Listen(ctx, api.ListenRequest{Protocol: "/x/kept", Target: "/ip4/127.0.0.1/tcp/9"}); err != nil {
		t.Fatal(err)
	}
	// A directory where the file should be: renaming over it fails, even
	// for root.
	path := r.File(repo.TunnelsFile)
	if err := os.Rename(path, path+".saved"); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(path, "in-the-way"), 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := c.Listen(ctx, api.ListenRequest{Protocol: "/x/lost", Target: "/ip4/127.0.0.1/tcp/9"})
	if err == nil || !strings.Contains(err.Error(), "saving "+path) || !strings.Contains(err.Error(), "the listen was not created") {
		t.Fatalf("listen with an unwritable tunnels.json: %v", err)
	}
	_, err = c.Forward(ctx, api.ForwardRequest{Protocol: "/x/lost", Listen: "/ip4/127.0.0.1/tcp/0", Target: "/p2p/" + somePeer})
	if err == nil || !strings.Contains(err.Error(), "the forward was not created") {
		t.Fatalf("forward with an unwritable tunnels.json: %v", err)
	}
	if l := d.listeners.List(); len(l) != 1 || l[0].Protocol != "/x/kept" {
		t.Fatalf("registry after failed saves: %+v", l)
	}
	_, err = c.Close(ctx, api.CloseRequest{Protocol: "/x/kept"})
	if err == nil || !strings.Contains(err.Error(), "closed 1 listener(s), but saving") {
		t.Fatalf("close with an unwritable tunnels.json: %v", err)
	}
	if err := os.RemoveAll(path); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Listen(ctx, api.ListenRequest{Protocol: "/x/back", Target: "/ip4/127.0.0.1/tcp/9"}); err != nil {
		t.Fatalf("listen once the file is writable: %v", err)
	}
	var f tunnelsFile
	if err := r.ReadJSON(repo.TunnelsFile, &f); err != nil || len(f.Tunnels) != 1 || f.Tunnels[0].Protocol != "/x/back" {
		t.Fatalf("tunnels.json: %+v (%v)", f, err)
	}
}

// TestLeftoverTempFilesRemovedAtStart: temporary files of writes a crash
// interrupted are removed when the daemon starts.
func TestLeftoverTempFilesRemovedAtStart(t *testing.T) {
	r := newRepo(t)
	left := r.File(".tunnels.json.tmp-1234")
	if err := os.WriteFile(left, []byte(`{"version":1,"tun`), 0o600); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Fatalf("leftover temp file still there: %v", err)
	}
}

// holdPort binds a loopback TCP port the way another program would and
// returns its multiaddr and a function that frees it.
func holdPort(t *testing.T) (string, func()) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	free := func() { once.Do(func() { ln.Close() }) }
	t.Cleanup(free)
	return fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", ln.Addr().(*net.TCPAddr).Port), free
}

// listed finds the entry of ls whose kind and protocol are given.
func listed(t *testing.T, c client.Client, kind, proto string) []api.Listener {
	t.Helper()
	l, err := c.Listeners(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(l, func(e api.Listener) bool { return e.Kind != kind || e.Protocol != proto })
}

// savedCount counts the entries of tunnels.json for protocol proto.
func savedCount(t *testing.T, r *repo.Repo, proto string) int {
	t.Helper()
	var f tunnelsFile
	if err := r.ReadJSON(repo.TunnelsFile, &f); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range f.Tunnels {
		if s.Protocol == proto {
			n++
		}
	}
	return n
}

// TestFailedTunnelsAreShownClosableAndRetried: persisted forwards whose
// ports are taken at start show in ls as failed with the reason, stay in
// the file exactly once, come back on a retry once the port is free (or
// when re-added), and can be closed for good.
func TestFailedTunnelsAreShownClosableAndRetried(t *testing.T) {
	r := newRepo(t)
	addrA, freeA := holdPort(t)
	addrB, freeB := holdPort(t)
	addrC, _ := holdPort(t)
	addrD, freeD := holdPort(t)
	f := tunnelsFile{Version: 1, Tunnels: []savedTunnel{
		{Kind: "forward", Protocol: "/x/a", ListenAddress: addrA, TargetAddress: "/p2p/" + somePeer},
		{Kind: "forward", Protocol: "/x/b", ListenAddress: addrB, TargetAddress: "/p2p/" + somePeer},
		{Kind: "forward", Protocol: "/x/c", ListenAddress: addrC, TargetAddress: "/p2p/" + somePeer},
		{Kind: "forward", Protocol: "/x/d", ListenAddress: addrD, TargetAddress: "/p2p/" + somePeer},
		{Kind: "listen", Protocol: "/x/ok", TargetAddress: "/ip4/127.0.0.1/tcp/9", AllowPeers: []string{somePeer}},
	}}
	if err := r.WriteJSON(repo.TunnelsFile, f); err != nil {
		t.Fatal(err)
	}
	d := start(t, r, retryEvery(time.Hour)) // retries only when asked
	c := apiClient(t, r)
	ctx := context.Background()

	all, err := c.Listeners(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, l := range all {
		kinds = append(kinds, l.Kind+" "+l.Protocol+" "+l.State)
	}
	want := []string{"forward /x/a failed", "forward /x/b failed", "forward /x/c failed", "forward /x/d failed", "listen /x/ok active"}
	if !slices.Equal(kinds, want) {
		t.Fatalf("ls: %v, want %v", kinds, want)
	}
	a := all[0]
	if a.ListenAddress != addrA || !strings.Contains(a.LastError, "address "+addrA+" is already in use") || a.LastErrorAt == nil ||
		a.AllowedPeers == nil || len(a.AllowedPeers) != 0 {
		t.Fatalf("failed entry: %+v", a)
	}
	if ok := all[4]; !slices.Equal(ok.AllowedPeers, []string{somePeer}) {
		t.Fatalf("allowed_peers of the listen: %+v", ok)
	}

	// A retry while the port is still taken changes nothing.
	if l, err := c.RetryListeners(ctx); err != nil || len(l) != 5 || l[0].State != api.StateFailed {
		t.Fatalf("retry with the ports taken: %+v %v", l, err)
	}
	// Freed: the retry brings it back, once.
	freeA()
	if l, err := c.RetryListeners(ctx); err != nil || l[0].Protocol != "/x/a" || l[0].State != api.StateActive || l[0].ListenAddress != addrA {
		t.Fatalf("retry with the port free: %+v %v", l, err)
	}
	// Re-adding a failed one by hand replaces it.
	freeB()
	if _, err := c.Forward(ctx, api.ForwardRequest{Protocol: "/x/b", Listen: addrB, Target: "/p2p/" + somePeer}); err != nil {
		t.Fatal(err)
	}
	if got := listed(t, c, "forward", "/x/b"); len(got) != 1 || got[0].State != api.StateActive {
		t.Fatalf("re-added: %+v", got)
	}
	// Another tunnel on a failed one's port leaves the failed one listed.
	freeD()
	if _, err := c.Forward(ctx, api.ForwardRequest{Protocol: "/x/other", Listen: addrD, Target: "/p2p/" + somePeer}); err != nil {
		t.Fatal(err)
	}
	if got := listed(t, c, "forward", "/x/d"); len(got) != 1 || got[0].State != api.StateFailed {
		t.Fatalf("failed entry whose port another tunnel took: %+v", got)
	}
	// Closing a failed one removes it from ls and from the file.
	if n, err := c.Close(ctx, api.CloseRequest{ListenAddress: addrC}); err != nil || n != 1 {
		t.Fatalf("close of the failed forward: %d, %v", n, err)
	}
	if got := listed(t, c, "forward", "/x/c"); len(got) != 0 {
		t.Fatalf("closed failed entry still listed: %+v", got)
	}
	for proto, want := range map[string]int{"/x/a": 1, "/x/b": 1, "/x/c": 0, "/x/d": 1, "/x/other": 1, "/x/ok": 1} {
		if n := savedCount(t, r, proto); n != want {
			t.Errorf("tunnels.json has %d entries for %s, want %d", n, proto, want)
		}
	}
	// And the restart brings back exactly what is left.
	d.Close()
	d2 := start(t, r)
	if l := d2.listeners.List(); len(l) != 4 { // /x/d fails again: /x/other has its port
		t.Fatalf("after restart: %+v", l)
	}
}

// TestFailedTunnelRetriedWhenPortFrees: without anyone asking, the daemon
// brings a failed forward back once its port is free.
func TestFailedTunnelRetriedWhenPortFrees(t *testing.T) {
	r := newRepo(t)
	addr, free := holdPort(t)
	if err := r.WriteJSON(repo.TunnelsFile, tunnelsFile{Version: 1, Tunnels: []savedTunnel{
		{Kind: "forward", Protocol: "/x/a", ListenAddress: addr, TargetAddress: "/p2p/" + somePeer},
	}}); err != nil {
		t.Fatal(err)
	}
	d := start(t, r, retryEvery(10*time.Millisecond))
	c := apiClient(t, r)
	if got := listed(t, c, "forward", "/x/a"); len(got) != 1 || got[0].State != api.StateFailed {
		t.Fatalf("before the port is free: %+v", got)
	}
	free()
	for len(d.listeners.List()) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	if got := listed(t, c, "forward", "/x/a"); len(got) != 1 || got[0].State != api.StateActive {
		t.Fatalf("after the port is free: %+v", got)
	}
	if n := savedCount(t, r, "/x/a"); n != 1 {
		t.Fatalf("tunnels.json has %d entries for the forward", n)
	}
}

// retryEvery sets how often failed entries are retried.
func retryEvery(d time.Duration) Option {
	return func(c *config) error {
		c.retryInterval = d
		return nil
	}
}

// TestSavesOffTheHotPath: while tunnels.json is being written, the
// registry is not blocked (a foreground tunnel, never saved, is created,
// listed and removed); a persistent tunnel is answered only once a write
// that started after it has finished; and the changes made during one write
// are saved together by the next one.
func TestSavesOffTheHotPath(t *testing.T) {
	r := newRepo(t)
	d, err := New(r, ListenAddrs(ma.StringCast("/ip4/127.0.0.1/tcp/0")), APIAddr(ma.StringCast("/ip4/127.0.0.1/tcp/0")),
		Bootstrap(), DHT("off", "/x"), MDNS(false))
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu     sync.Mutex    // guards writes and gate
		writes int           // writes begun
		gate   chan struct{} // when set, writes wait for it to close
		inside = make(chan struct{}, 1)
	)
	d.tunnels.beforeWrite = func() {
		mu.Lock()
		writes++
		g := gate
		mu.Unlock()
		if g != nil {
			inside <- struct{}{}
			<-g
		}
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	c := apiClient(t, r)
	ctx := context.Background()
	p := d.tunnels.persist
	// hold makes the next write wait until the returned function is called.
	hold := func() func() {
		g := make(chan struct{})
		mu.Lock()
		gate, writes = g, 0
		mu.Unlock()
		p.request()
		<-inside
		return func() {
			mu.Lock()
			gate = nil
			mu.Unlock()
			close(g)
		}
	}

	release := hold()
	fg, err := d.listeners.Forward(ctx, listeners.ForwardRequest{Protocol: "/x/fg",
		Listen: ma.StringCast("/ip4/127.0.0.1/tcp/0"), Target: ma.StringCast("/p2p/" + somePeer), Foreground: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := listed(t, c, "forward", "/x/fg"); len(got) != 1 {
		t.Fatalf("foreground forward not listed while a save is held: %+v", got)
	}
	if !d.listeners.Remove(fg) {
		t.Fatal("foreground forward not removed")
	}
	release()
	if err := d.saveTunnels(); err != nil {
		t.Fatal(err)
	}

	release = hold()
	p.mu.Lock()
	base := p.requested
	p.mu.Unlock()
	const n = 5
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := c.Listen(ctx, api.ListenRequest{Protocol: fmt.Sprintf("/x/p%d", i), Target: "/ip4/127.0.0.1/tcp/9"})
			errs <- err
		}()
	}
	// Each listen asks twice: its change, then its answer's wait.
	for {
		p.mu.Lock()
		asked := p.requested - base
		p.mu.Unlock()
		if asked == 2*n {
			break
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case err := <-errs:
		t.Fatalf("listen answered (%v) before its save was done", err)
	default:
	}
	release()
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	got := writes
	mu.Unlock()
	if got != 2 {
		t.Errorf("%d writes, want 2: the held one, then one for the %d changes made meanwhile", got, n)
	}
	var f tunnelsFile
	if err := r.ReadJSON(repo.TunnelsFile, &f); err != nil || len(f.Tunnels) != n {
		t.Fatalf("tunnels.json: %d entries (%v), want %d", len(f.Tunnels), err, n)
	}
}

// TestForegroundClosedBeforeTheWait: a foreground entry closed between its
// creation and the moment its request starts waiting (a `close -a` racing
// the command) still ends the request.
func TestForegroundClosedBeforeTheWait(t *testing.T) {
	r := newRepo(t)
	d := start(t, r)
	info, err := d.listeners.Forward(context.Background(), listeners.ForwardRequest{Protocol: "/x/fg",
		Listen: ma.StringCast("/ip4/127.0.0.1/tcp/0"), Target: ma.StringCast("/p2p/" + somePeer), Foreground: true})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := d.listeners.Close(listeners.Match{All: true}); err != nil || n != 1 {
		t.Fatalf("close: %d, %v", n, err)
	}
	req := httptest.NewRequest(http.MethodPost, api.RouteForward, nil) // its context never ends
	w := httptest.NewRecorder()
	done := make(chan error, 1)
	go func() { done <- d.answerTunnel(w, req, info) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the foreground request still holds a tunnel that was closed")
	}
}
