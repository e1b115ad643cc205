package client_test

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/p2pd/p2pd/api"
	"github.com/p2pd/p2pd/client"
)

// idOf asks c which daemon answers.
func idOf(t *testing.T, c client.Client) string {
	t.Helper()
	id, err := c.ID(testContext(t))
	if err != nil {
		t.Fatalf("ID: %v", err)
	}
	return id.ID
}

// TestLBFailoverSurvivesStoppedDaemons stops two of three daemons one after
// the other (the first cleanly, the second with SIGKILL, which leaves a
// stale REPO/api behind): every call keeps being answered, always by the
// first daemon still alive. It also shows what happens to an open event
// stream when its daemon dies, and the error once none is left.
func TestLBFailoverSurvivesStoppedDaemons(t *testing.T) {
	nodes := []*node{startNode(t, "/ip4/127.0.0.1/tcp/0"), startNode(t, "/ip4/127.0.0.1/tcp/0"), startNode(t, "/ip4/127.0.0.1/tcp/0")}
	cfgs := make([]*client.Config, len(nodes))
	for i, n := range nodes {
		cfgs[i] = &client.Config{Repo: n.repo}
	}
	lb, err := client.NewLBClient(client.Failover, cfgs, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lb.CloseIdleConnections)
	ctx := testContext(t)

	expect := func(want *node, calls int) {
		t.Helper()
		for i := 0; i < calls; i++ {
			if got := idOf(t, lb); got != want.id {
				t.Fatalf("call %d answered by %s, want %s (repo %s)", i, got, want.id, want.repo)
			}
			if _, err := lb.Listeners(ctx); err != nil {
				t.Fatalf("Listeners: %v", err)
			}
		}
	}
	expect(nodes[0], 5)

	es, err := lb.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer es.Close()
	if es.Daemon() != nodes[0].api {
		t.Errorf("event stream comes from %s, want %s", es.Daemon(), nodes[0].api)
	}

	if err := nodes[0].stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if _, err := es.Next(); !errors.Is(err, client.ErrUnreachable) {
		t.Errorf("Next after its daemon stopped = %v, want an error matching ErrUnreachable", err)
	}
	expect(nodes[1], 5)
	es2, err := lb.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer es2.Close()
	if es2.Daemon() != nodes[1].api {
		t.Errorf("new event stream comes from %s, want %s", es2.Daemon(), nodes[1].api)
	}

	if err := nodes[1].stop(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(nodes[1].repo, api.APIFile)); err != nil {
		t.Fatalf("a killed daemon should leave its api file behind: %v", err)
	}
	expect(nodes[2], 5)

	if err := nodes[2].stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_, err = lb.ID(ctx)
	if !errors.Is(err, client.ErrUnreachable) {
		t.Fatalf("ID with every daemon stopped = %v, want ErrUnreachable", err)
	}
	var ue *client.UnreachableError
	if !errors.As(err, &ue) || ue.Sent {
		t.Errorf("error %v: want an *UnreachableError with Sent false", err)
	}
}

// TestLBRoundRobinSpreadsCalls makes 30 calls over three daemons: each
// answers exactly 10, in turn.
func TestLBRoundRobinSpreadsCalls(t *testing.T) {
	nodes := []*node{startNode(t, "/ip4/127.0.0.1/tcp/0"), startNode(t, "/ip4/127.0.0.1/tcp/0"), startNode(t, "/ip4/127.0.0.1/tcp/0")}
	var cfgs []*client.Config
	for _, n := range nodes {
		cfgs = append(cfgs, &client.Config{APIAddr: n.api, TokenFile: filepath.Join(n.repo, api.TokenFile)})
	}
	lb, err := client.NewLBClient(client.RoundRobin, cfgs, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lb.CloseIdleConnections)

	counts := map[string]int{}
	var seq []string
	for i := 0; i < 30; i++ {
		id := idOf(t, lb)
		counts[id]++
		seq = append(seq, id)
	}
	for _, n := range nodes {
		if counts[n.id] != 10 {
			t.Errorf("daemon %s answered %d of 30 calls, want 10 (all: %v)", n.id, counts[n.id], counts)
		}
	}
	for i := 3; i < len(seq); i++ {
		if seq[i] != seq[i-3] {
			t.Fatalf("call %d went to %s, want the same daemon as call %d (%s): not a rotation", i, seq[i], i-3, seq[i-3])
		}
	}

	// With one daemon down the other two share the calls, none fails.
	if err := nodes[1].stop(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	counts = map[string]int{}
	for i := 0; i < 20; i++ {
		counts[idOf(t, lb)]++
	}
	if counts[nodes[1].id] != 0 || counts[nodes[0].id] == 0 || counts[nodes[2].id] == 0 {
		t.Errorf("with daemon 1 down the calls went %v, want them shared by daemons 0 and 2", counts)
	}
}

// writeToken replaces a repo's token file the way an operator would rotate
// it: a new file renamed over the old one.
func writeToken(t *testing.T, repo string) string {
	t.Helper()
	var b [32]byte
	rand.Read(b[:])
	tok := hex.EncodeToString(b[:])
	tmp := filepath.Join(repo, ".api.token.new")
	if err := os.WriteFile(tmp, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(repo, api.TokenFile)); err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestRotatedTokenNeedsNoNewClient rotates a repo's token (the daemon reads
// it when it starts, so it is restarted with the new one, on a new API
// port): the client made before keeps working, and the old token is now
// refused.
func TestRotatedTokenNeedsNoNewClient(t *testing.T) {
	n := startNode(t, "/ip4/127.0.0.1/tcp/0")
	c := newClient(t, &client.Config{Repo: n.repo})
	if got := idOf(t, c); got != n.id {
		t.Fatalf("ID = %s, want %s", got, n.id)
	}
	old, err := os.ReadFile(filepath.Join(n.repo, api.TokenFile))
	if err != nil {
		t.Fatal(err)
	}

	if err := n.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	writeToken(t, n.repo)
	n2 := restart(t, n)
	if n2.api == n.api {
		t.Logf("the restarted daemon reuses API address %s", n.api)
	}
	if got := idOf(t, c); got != n.id {
		t.Fatalf("after the rotation ID = %s, want %s", got, n.id)
	}

	stale := newClient(t, &client.Config{APIAddr: n2.api, Token: string(old[:len(old)-1])})
	if _, err := stale.ID(testContext(t)); !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("the old token gave %v, want ErrUnauthorized", err)
	}
}

// TestWrongTokenIsUnauthorized checks the typed error and the daemon's
// exact message for a token given directly and one from a file.
func TestWrongTokenIsUnauthorized(t *testing.T) {
	n := startNode(t, "/ip4/127.0.0.1/tcp/0")
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("not-the-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  client.Config
	}{
		{"token", client.Config{APIAddr: n.api, Token: "not-the-token"}},
		{"token file", client.Config{APIAddr: n.api, TokenFile: file}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, &tt.cfg)
			_, err := c.Peers(testContext(t))
			if !errors.Is(err, client.ErrUnauthorized) {
				t.Fatalf("Peers = %v, want ErrUnauthorized", err)
			}
			if errors.Is(err, client.ErrUnreachable) {
				t.Errorf("%v matches ErrUnreachable too", err)
			}
			const want = "wrong API token: use the token from REPO/api.token"
			if err.Error() != want {
				t.Errorf("error %q, want %q", err, want)
			}
			var ce *client.Error
			if !errors.As(err, &ce) || ce.Status != 401 || ce.Code != api.CodeUnauthorized {
				t.Errorf("error %#v: want a *client.Error with status 401 and code %q", err, api.CodeUnauthorized)
			}
		})
	}
}

// TestUnixSocketAPI runs a daemon whose API is a unix socket and drives it
// end to end: through the repo's api file and through the address itself,
// including a streaming call.
func TestUnixSocketAPI(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "api.sock")
	n := startNode(t, "/unix"+sock)
	if n.api != "/unix"+sock {
		t.Fatalf("daemon reports API %s, want /unix%s", n.api, sock)
	}
	st, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode()&os.ModeSocket == 0 || st.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want a socket with 0600", sock, st.Mode())
	}
	for _, cfg := range []*client.Config{
		{Repo: n.repo},
		{APIAddr: n.api, TokenFile: filepath.Join(n.repo, api.TokenFile)},
	} {
		t.Run(fmt.Sprintf("repo=%t", cfg.Repo != ""), func(t *testing.T) {
			ctx := testContext(t)
			c := newClient(t, cfg)
			if got := idOf(t, c); got != n.id {
				t.Fatalf("ID = %s, want %s", got, n.id)
			}
			es, err := c.Events(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer es.Close()
			l, err := c.Listen(ctx, api.ListenRequest{Protocol: "/x/unix-test", Target: "/ip4/127.0.0.1/tcp/9"})
			if err != nil {
				t.Fatal(err)
			}
			if l.Kind != api.KindListen || l.Protocol != "/x/unix-test" {
				t.Errorf("Listen = %+v", l)
			}
			ev, err := es.Next()
			if err != nil || ev.Type != api.EventListenerAdded || ev.Listener == nil || ev.Listener.Protocol != "/x/unix-test" {
				t.Errorf("first event = %+v, %v; want listener_added for /x/unix-test", ev, err)
			}
			closed, err := c.Close(ctx, api.CloseRequest{Protocol: "/x/unix-test"})
			if err != nil || closed != 1 {
				t.Errorf("Close = %d, %v; want 1", closed, err)
			}
			if err := es.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := es.Next(); !errors.Is(err, io.EOF) {
				t.Errorf("Next after Close = %v, want io.EOF", err)
			}
		})
	}
}

// TestDaemonErrorsAreTyped checks that the daemon's refusals come back as
// errors matching the sentinels, with the daemon's exact words.
func TestDaemonErrorsAreTyped(t *testing.T) {
	n := startNode(t, "/ip4/127.0.0.1/tcp/0")
	c := newClient(t, &client.Config{Repo: n.repo})
	ctx := testContext(t)
	if _, err := c.Listen(ctx, api.ListenRequest{Protocol: "/x/dup", Target: "/ip4/127.0.0.1/tcp/9"}); err != nil {
		t.Fatal(err)
	}
	id99 := uint64(99)
	tests := []struct {
		name    string
		call    func() error
		want    error
		wantMsg string
	}{
		{"unknown stream", func() error {
			_, err := c.CloseStreams(ctx, api.StreamCloseRequest{ID: &id99})
			return err
		}, client.ErrNotFound, "no stream with id 99"},
		{"no stream id", func() error {
			_, err := c.CloseStreams(ctx, api.StreamCloseRequest{})
			return err
		}, client.ErrBadRequest, "no id specified"},
		{"protocol outside /x/", func() error {
			_, err := c.Listen(ctx, api.ListenRequest{Protocol: "/custom", Target: "/ip4/127.0.0.1/tcp/9"})
			return err
		}, client.ErrBadRequest, "protocol name must be within '/x/' namespace"},
		{"second listen", func() error {
			_, err := c.Listen(ctx, api.ListenRequest{Protocol: "/x/dup", Target: "/ip4/127.0.0.1/tcp/10"})
			return err
		}, client.ErrConflict, "listener already registered"},
		{"close without filter", func() error {
			_, err := c.Close(ctx, api.CloseRequest{})
			return err
		}, client.ErrBadRequest, "no matching options given"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want one matching %v", err, tt.want)
			}
			if err.Error() != tt.wantMsg {
				t.Errorf("error %q, want %q", err, tt.wantMsg)
			}
		})
	}
}
