package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"strings"

	"github.com/p2pd/p2pd/api"
	"github.com/p2pd/p2pd/client"
)

// Example drives the daemon of the default repo: it watches the event
// stream while it adds a listener and closes it again.
func Example() {
	ctx := context.Background()
	// nil (the zero Config) means the daemon of the default repo: $P2PD_REPO,
	// else ~/.p2pd. Its address and token are read from REPO/api and
	// REPO/api.token.
	c, err := client.NewDefaultClient(nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.CloseIdleConnections()

	events, err := c.Events(ctx)
	if errors.Is(err, client.ErrUnreachable) {
		log.Fatalf("%v", err) // says how to start the daemon
	}
	if err != nil {
		log.Fatal(err)
	}
	defer events.Close()

	l, err := c.Listen(ctx, api.ListenRequest{Protocol: "/x/example", Target: "/ip4/127.0.0.1/tcp/8080"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(l.Kind, l.Protocol, l.TargetAddress)

	ev, err := events.Next()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ev.Type, ev.Listener.Protocol)

	n, err := c.Close(ctx, api.CloseRequest{Protocol: "/x/example"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("closed", n)
	// Output:
	// listen /x/example /ip4/127.0.0.1/tcp/8080
	// listener_added /x/example
	// closed 1
}

// ExampleNewLBClient fails over from a daemon that is not running to the
// default repo's daemon.
func ExampleNewLBClient() {
	c, err := client.NewLBClient(client.Failover, []*client.Config{
		{APIAddr: "/ip4/127.0.0.1/tcp/1", Token: "unused"}, // nothing listens here
		{}, // the default repo's daemon
	}, 1)
	if err != nil {
		log.Fatal(err)
	}
	defer c.CloseIdleConnections()

	id, err := c.ID(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("answered by a p2pd node:", strings.HasPrefix(id.ID, "12D3KooW"))
	// Output: answered by a p2pd node: true
}
