package discovery

import (
	"errors"
	"testing"
	"time"
)

// TestLoneDHTServerAdvertisesAndServesLocalRecords is item 16 of issue 11:
// a DHT server whose only peers are DHT clients has an empty routing table
// for good. Its own rendezvous must still be found by the clients that ask
// it, and the records the clients stored on it must be found by it.
func TestLoneDHTServerAdvertisesAndServesLocalRecords(t *testing.T) {
	server := newNode(t, Mode(ModeServer), NoBootstrap())
	clientA := newNode(t, Mode(ModeClient), BootstrapPeers(info(server.h)))
	clientB := newNode(t, Mode(ModeClient), BootstrapPeers(info(server.h)))
	for _, c := range []*node{clientA, clientB} {
		eventually(t, 30*time.Second, "client has the server in its routing table", func() bool {
			return c.s.RoutingTableSize() > 0
		})
	}
	if n := server.s.RoutingTableSize(); n != 0 {
		t.Fatalf("the server's routing table holds %d peers; the test needs it empty (clients only)", n)
	}
	ctx := t.Context()

	// The server advertises: stored locally, and it says so.
	if _, err := server.s.Advertise(ctx, "lone"); !errors.Is(err, ErrNoPeers) {
		t.Fatalf("server Advertise: %v, want ErrNoPeers (stored locally only)", err)
	}
	// A client asking the network (the server) finds it, with addresses.
	found, err := clientA.s.FindAll(ctx, "lone")
	if err != nil {
		t.Fatalf("client FindAll: %v", err)
	}
	if len(found) != 1 || found[0].ID != server.h.ID() || len(found[0].Addrs) == 0 {
		t.Fatalf("client found %v, want the server with its addresses", found)
	}

	// A client advertises (onto the server); the server finds it among its
	// own records and says that no other node was asked.
	if _, err := clientB.s.Advertise(ctx, "clients"); err != nil {
		t.Fatalf("client Advertise: %v", err)
	}
	// (ADD_PROVIDER is a one-way message: the record lands a little later.)
	eventually(t, 30*time.Second, "the server found client B among its own records", func() bool {
		found, err = server.s.FindAll(ctx, "clients")
		if !errors.Is(err, ErrNoPeers) {
			t.Fatalf("server FindAll: %v, want ErrNoPeers with local records", err)
		}
		return len(found) == 1 && found[0].ID == clientB.h.ID()
	})

	// Joined, the server's rendezvous loop runs without DHT peers: the
	// clients that join the same string find it and it finds them.
	if err := server.s.Join("room"); err != nil {
		t.Fatal(err)
	}
	if err := clientA.s.Join("room"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "client A found the lone server through the rendezvous", func() bool {
		return clientA.rec.count("room", server.h.ID()) > 0
	})
	eventually(t, 60*time.Second, "the lone server found client A through its own records", func() bool {
		return server.rec.count("room", clientA.h.ID()) > 0
	})
}
