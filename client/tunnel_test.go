package client_test

import (
	"errors"
	"syscall"
	"testing"

	"github.com/p2pd/p2pd/api"
	"github.com/p2pd/p2pd/client"
)

// TestForegroundTunnelEnds opens foreground listeners and ends them the
// three possible ways: the caller closes the Tunnel, someone closes the
// listener in the daemon, the daemon dies. Tunnel.Err tells them apart.
func TestForegroundTunnelEnds(t *testing.T) {
	n := startNode(t, "/ip4/127.0.0.1/tcp/0")
	c := newClient(t, &client.Config{Repo: n.repo})
	ctx := testContext(t)
	req := api.ListenRequest{Protocol: "/x/fg", Target: "/ip4/127.0.0.1/tcp/9"}
	es, err := c.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer es.Close()
	ended := func(tun *client.Tunnel) {
		t.Helper()
		select {
		case <-tun.Done():
		case <-ctx.Done():
			t.Fatal("the tunnel did not end")
		}
	}

	// 1. The caller closes it: the daemon removes the listener.
	tun, err := c.ListenForeground(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if !tun.Listener.Foreground || tun.Listener.Protocol != "/x/fg" || tun.Daemon() != n.api {
		t.Errorf("tunnel = %+v from %s, want a foreground /x/fg listener from %s", tun.Listener, tun.Daemon(), n.api)
	}
	ls, err := c.Listeners(ctx)
	if err != nil || len(ls) != 1 || !ls[0].Foreground {
		t.Fatalf("Listeners = %+v, %v; want the foreground listener", ls, err)
	}
	if err := tun.Close(); err != nil {
		t.Fatal(err)
	}
	ended(tun)
	if tun.Err() != nil {
		t.Errorf("Err after Close = %v, want nil", tun.Err())
	}
	nextOf(t, es, api.EventListenerRemoved, nil)
	if ls, err := c.Listeners(ctx); err != nil || len(ls) != 0 {
		t.Fatalf("Listeners after Close = %+v, %v; want none", ls, err)
	}

	// 2. Someone closes the listener in the daemon.
	tun, err = c.ListenForeground(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := c.Close(ctx, api.CloseRequest{Protocol: "/x/fg"}); err != nil || n != 1 {
		t.Fatalf("Close = %d, %v; want 1", n, err)
	}
	ended(tun)
	if !errors.Is(tun.Err(), client.ErrTunnelEnded) {
		t.Errorf("Err = %v, want ErrTunnelEnded", tun.Err())
	}
	tun.Close()

	// 3. The daemon dies.
	tun, err = c.ListenForeground(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	defer tun.Close()
	if err := n.stop(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ended(tun)
	if !errors.Is(tun.Err(), client.ErrUnreachable) {
		t.Errorf("Err after the daemon died = %v, want one matching ErrUnreachable", tun.Err())
	}
}
