package gateway

import (
	"context"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/p2pd/p2pd/listeners"
)

// rendezvous answers lookups of names from a table the test fills, as
// discovery would from the DHT.
type rendezvous struct {
	mu      sync.Mutex // guards peers and lookups
	peers   map[string][]peer.AddrInfo
	lookups int
}

func (r *rendezvous) FindAll(_ context.Context, ns string) ([]peer.AddrInfo, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lookups++
	return r.peers[ns], nil
}

func (r *rendezvous) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lookups
}

// tagged answers every request with tag.
func tagged(tag string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, tag) })
}

func TestRendezvousName(t *testing.T) {
	a, b, c, d := newNode(t), newNode(t), newNode(t), newNode(t)
	serveWeb(t, c, webProto, tagged("c"))
	serveWeb(t, d, webProto, tagged("d"))
	info := func(n *node) peer.AddrInfo { return peer.AddrInfo{ID: n.h.ID(), Addrs: n.h.Addrs()} }
	rdv := &rendezvous{peers: map[string][]peer.AddrInfo{
		"team":   {info(b), info(c), info(d)}, // b serves nothing
		"idlers": {info(b)},
	}}
	g := startGateway(t, a, WithRendezvousFinder(rdv))
	base := baseURL(t, g)

	// b is tried and refuses; c serves; the next client connections stay
	// on c, without looking the name up again.
	for range 3 {
		wantStatus(t, newClient(t), base+"/p2p/@team/x/web/http/", http.StatusOK, "c")
	}
	if n := rdv.count(); n != 1 {
		t.Fatalf("%d lookups of the name for 3 requests within its TTL, want 1", n)
	}
	// c stops serving: once a knows (identify), the next client connection
	// moves on to d.
	if _, err := c.reg.Close(listeners.Match{Protocol: webProto}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a to learn that c stopped serving", func() bool {
		got, err := a.h.Peerstore().SupportsProtocols(c.h.ID(), webProto)
		return err == nil && len(got) == 0
	})
	wantStatus(t, newClient(t), base+"/p2p/@team/x/web/http/", http.StatusOK, "d")

	wantStatus(t, newClient(t), base+"/p2p/@idlers/x/web/http/", http.StatusNotFound,
		"no peer advertising @idlers serves /x/web", "does not serve", b.h.ID().String())
	wantStatus(t, newClient(t), base+"/p2p/@nobody/x/web/http/", http.StatusBadGateway,
		"no peer advertising @nobody serves /x/web yet")
}

// stuckRendezvous never answers a lookup before its context ends.
type stuckRendezvous struct{}

func (stuckRendezvous) FindAll(ctx context.Context, _ string) ([]peer.AddrInfo, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestRendezvousLookupTimesOut(t *testing.T) {
	a := newNode(t)
	g := startGateway(t, a, WithRendezvousFinder(stuckRendezvous{}), Timeout(testTimeoutShort))
	wantStatus(t, newClient(t), baseURL(t, g)+"/p2p/@team/x/web/http/", http.StatusGatewayTimeout,
		"peer @team not reached within "+testTimeoutShort.String())
}
