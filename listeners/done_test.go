package listeners

import (
	"testing"
)

// TestEntryDoneForeground: every entry's Done is closed when it is removed,
// however soon after Forward or Listen that happens (a foreground command
// waits on it), and not before.
func TestEntryDoneForeground(t *testing.T) {
	n := newNode(t)
	fwd, err := n.reg.Forward(t.Context(), ForwardRequest{Protocol: "/x/d", Listen: mustAddr(t, "/ip4/127.0.0.1/tcp/0"),
		Target: p2pAddr(t, randomPeer(t)), Foreground: true})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := n.reg.Listen(t.Context(), ListenRequest{Protocol: "/x/d", Target: mustAddr(t, "/ip4/127.0.0.1/tcp/7"), Foreground: true})
	if err != nil {
		t.Fatal(err)
	}
	kept, err := n.reg.Listen(t.Context(), ListenRequest{Protocol: "/x/kept", Target: mustAddr(t, "/ip4/127.0.0.1/tcp/7")})
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []Info{fwd, lis, kept} {
		if i.Done() == nil {
			t.Fatalf("%s %s: Done is nil", i.Kind, i.Protocol)
		}
		select {
		case <-i.Done():
			t.Fatalf("%s %s: Done before it was closed", i.Kind, i.Protocol)
		default:
		}
	}
	// Closed before anyone waits: Done still says so.
	if got, err := n.reg.Close(Match{Protocol: "/x/d"}); err != nil || got != 2 {
		t.Fatalf("Close = %d, %v", got, err)
	}
	<-fwd.Done()
	<-lis.Done()
	for _, i := range n.reg.List() {
		select {
		case <-i.Done():
			t.Fatalf("%s: Done although still registered", i.Protocol)
		default:
		}
	}
	if err := n.reg.Shutdown(); err != nil {
		t.Fatal(err)
	}
	<-kept.Done()
}
