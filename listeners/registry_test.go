package listeners

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"

	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/p2pd/p2pd/streams"
)

// TestRequestErrors checks every refusal with its exact text.
func TestRequestErrors(t *testing.T) {
	n := newNode(t)
	other := p2pAddr(t, randomPeer(t))
	tcp0 := mustAddr(t, "/ip4/127.0.0.1/tcp/0")
	svc := mustAddr(t, "/ip4/127.0.0.1/tcp/7")
	ctx := t.Context()
	if _, err := n.reg.Listen(ctx, ListenRequest{Protocol: "/x/taken", Target: svc}); err != nil {
		t.Fatal(err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyAddr, err := manet.FromNetAddr(busy.Addr())
	if err != nil {
		t.Fatal(err)
	}
	busyUDP, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busyUDP.Close()
	busyUDPAddr, err := manet.FromNetAddr(busyUDP.LocalAddr())
	if err != nil {
		t.Fatal(err)
	}

	shut := newNode(t)
	if err := shut.reg.Shutdown(); err != nil {
		t.Fatal(err)
	}

	forward := func(r *Registry, req ForwardRequest) func() error {
		return func() error { _, err := r.Forward(ctx, req); return err }
	}
	listen := func(r *Registry, req ListenRequest) func() error {
		return func() error { _, err := r.Listen(ctx, req); return err }
	}
	closeWith := func(m Match) func() error {
		return func() error { _, err := n.reg.Close(m); return err }
	}

	tests := []struct {
		name    string
		do      func() error
		wantIs  error
		wantErr string
	}{
		{"forward outside /x/", forward(n.reg, ForwardRequest{Protocol: "/foo/1.0.0", Listen: tcp0, Target: other}),
			ErrProtocolNamespace, "protocol name must be within '/x/' namespace"},
		{"listen outside /x/", listen(n.reg, ListenRequest{Protocol: "/foo/1.0.0", Target: svc}),
			ErrProtocolNamespace, "protocol name must be within '/x/' namespace"},
		{"forward without protocol", forward(n.reg, ForwardRequest{Listen: tcp0, Target: other, AllowCustomProtocol: true}),
			ErrEmptyProtocol, "protocol is empty"},
		{"second listen of a protocol", listen(n.reg, ListenRequest{Protocol: "/x/taken", Target: svc}),
			ErrListenerExists, "listener already registered"},
		{"listen target with port 0", listen(n.reg, ListenRequest{Protocol: "/x/zero", Target: tcp0}),
			ErrPortZero, "port can not be 0"},
		{"listen on a protocol the node serves", listen(n.reg, ListenRequest{Protocol: "/ipfs/id/1.0.0", Target: svc, AllowCustomProtocol: true}),
			ErrProtocolServed, "protocol is already served by this node: /ipfs/id/1.0.0"},
		{"forward of a protocol the node serves", forward(n.reg, ForwardRequest{Protocol: "/ipfs/ping/1.0.0", Listen: tcp0, Target: other, AllowCustomProtocol: true}),
			ErrProtocolServed, "protocol is already served by this node: /ipfs/ping/1.0.0"},
		{"forward target without a peer", forward(n.reg, ForwardRequest{Protocol: "/x/a", Listen: tcp0, Target: svc}),
			ErrInvalidTarget, "invalid target address /ip4/127.0.0.1/tcp/7: must end with /p2p/<peer id>"},
		{"forward without target", forward(n.reg, ForwardRequest{Protocol: "/x/a", Listen: tcp0}),
			ErrInvalidTarget, "invalid target address: target is empty"},
		{"forward to itself", forward(n.reg, ForwardRequest{Protocol: "/x/a", Listen: tcp0, Target: p2pAddr(t, n.h.ID())}),
			ErrSelfTarget, "can not forward to this node itself"},
		{"forward on a QUIC address", forward(n.reg, ForwardRequest{Protocol: "/x/a", Listen: mustAddr(t, "/ip4/127.0.0.1/udp/0/quic-v1"), Target: other}),
			ErrInvalidListen, "invalid listen address /ip4/127.0.0.1/udp/0/quic-v1: a UDP address must end with /udp/PORT"},
		{"forward on an IP address alone", forward(n.reg, ForwardRequest{Protocol: "/x/a", Listen: mustAddr(t, "/ip4/127.0.0.1"), Target: other}),
			ErrInvalidListen, "invalid listen address /ip4/127.0.0.1: not a TCP, UDP or unix address"},
		{"forward on a busy UDP port", forward(n.reg, ForwardRequest{Protocol: "/x/a", Listen: busyUDPAddr, Target: other}),
			ErrAddrInUse, fmt.Sprintf("address %s is already in use", busyUDPAddr)},
		{"forward on a busy port", forward(n.reg, ForwardRequest{Protocol: "/x/a", Listen: busyAddr, Target: other}),
			ErrAddrInUse, fmt.Sprintf("address %s is already in use", busyAddr)},
		{"forward with a newline in the protocol", forward(n.reg, ForwardRequest{Protocol: "/x/a\n/x/b", Listen: tcp0, Target: other}),
			ErrInvalidProtocol, `invalid protocol name: it contains white space ('\n' at byte 4); white space is not allowed`},
		{"listen towards a UDP port 0", listen(n.reg, ListenRequest{Protocol: "/x/zero", Target: mustAddr(t, "/ip4/127.0.0.1/udp/0")}),
			ErrPortZero, "port can not be 0"},
		{"listen towards QUIC", listen(n.reg, ListenRequest{Protocol: "/x/a", Target: mustAddr(t, "/ip4/127.0.0.1/udp/7/quic-v1")}),
			ErrInvalidTarget, "invalid target address /ip4/127.0.0.1/udp/7/quic-v1: a UDP address must end with /udp/PORT"},
		{"report peer id to a UDP target", listen(n.reg, ListenRequest{Protocol: "/x/a", Target: mustAddr(t, "/ip4/127.0.0.1/udp/7"), ReportPeerID: true}),
			ErrReportPeerIDUDP, "--report-peer-id is not supported for a UDP target"},
		{"close without a filter", closeWith(Match{}),
			ErrNoMatch, "no matching options given"},
		{"close all with a protocol", closeWith(Match{All: true, Protocol: "/x/taken"}),
			ErrAllWithFilter, "can't combine --all with other matching options"},
		{"close all with a target", closeWith(Match{All: true, Target: svc}),
			ErrAllWithFilter, "can't combine --all with other matching options"},
		{"forward after shutdown", forward(shut.reg, ForwardRequest{Protocol: "/x/a", Listen: tcp0, Target: other}),
			ErrClosed, "listener registry is shut down"},
		{"listen after shutdown", listen(shut.reg, ListenRequest{Protocol: "/x/a", Target: svc}),
			ErrClosed, "listener registry is shut down"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do()
			if err == nil {
				t.Fatalf("got no error, want %q", tc.wantErr)
			}
			if err.Error() != tc.wantErr {
				t.Errorf("error = %q, want %q", err, tc.wantErr)
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("errors.Is(%v, %v) = false", err, tc.wantIs)
			}
		})
	}
	if got := len(n.reg.List()); got != 1 {
		t.Errorf("%d entries after refused requests, want the 1 set up", got)
	}
}

// TestRequestsAccepted checks the combinations the rules allow.
func TestRequestsAccepted(t *testing.T) {
	n := newNode(t)
	ctx := t.Context()
	tcp0 := mustAddr(t, "/ip4/127.0.0.1/tcp/0")
	svc := mustAddr(t, "/ip4/127.0.0.1/tcp/7")
	steps := []struct {
		name string
		do   func() (Info, error)
	}{
		{"custom protocol with the flag, listen", func() (Info, error) {
			return n.reg.Listen(ctx, ListenRequest{Protocol: "/custom/1.0.0", Target: svc, AllowCustomProtocol: true})
		}},
		{"custom protocol with the flag, forward", func() (Info, error) {
			return n.reg.Forward(ctx, ForwardRequest{Protocol: "/custom/1.0.0", Listen: tcp0, Target: p2pAddr(t, randomPeer(t)), AllowCustomProtocol: true})
		}},
		{"listen of a protocol", func() (Info, error) {
			return n.reg.Listen(ctx, ListenRequest{Protocol: "/x/both", Target: svc})
		}},
		{"forward of the protocol the node listens on", func() (Info, error) {
			return n.reg.Forward(ctx, ForwardRequest{Protocol: "/x/both", Listen: tcp0, Target: p2pAddr(t, randomPeer(t))})
		}},
		{"a second forward of the same protocol", func() (Info, error) {
			return n.reg.Forward(ctx, ForwardRequest{Protocol: "/x/both", Listen: tcp0, Target: p2pAddr(t, randomPeer(t))})
		}},
		{"listen towards a unix socket", func() (Info, error) {
			return n.reg.Listen(ctx, ListenRequest{Protocol: "/x/unix", Target: mustAddr(t, "/unix/tmp/p2pd-test.sock")})
		}},
	}
	for _, st := range steps {
		if _, err := st.do(); err != nil {
			t.Errorf("%s: %v", st.name, err)
		}
	}
	if got := len(n.reg.List()); got != len(steps) {
		t.Errorf("%d entries, want %d", got, len(steps))
	}
}

// TestConcurrentListen checks that of many simultaneous listens of one
// protocol exactly one wins.
func TestConcurrentListen(t *testing.T) {
	n := newNode(t)
	const tries = 8
	errs := make(chan error, tries)
	var wg sync.WaitGroup
	for range tries {
		wg.Go(func() {
			_, err := n.reg.Listen(t.Context(), ListenRequest{Protocol: "/x/race", Target: mustAddr(t, "/ip4/127.0.0.1/tcp/7")})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	won := 0
	for err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, ErrListenerExists):
			t.Errorf("unexpected error %v", err)
		}
	}
	if won != 1 {
		t.Errorf("%d listens succeeded, want 1", won)
	}
}

// closeFixture holds five entries created in an interleaved order.
type closeFixture struct {
	n       *node
	byName  map[string]Info
	targets map[string]ma.Multiaddr
}

func (f *closeFixture) name(i Info) string {
	for name, e := range f.byName {
		if e.Kind == i.Kind && e.Protocol == i.Protocol && e.ListenAddr.Equal(i.ListenAddr) && e.TargetAddr.Equal(i.TargetAddr) {
			return name
		}
	}
	return "?"
}

func (f *closeFixture) names() []string {
	var out []string
	for _, i := range f.n.reg.List() {
		out = append(out, f.name(i))
	}
	return out
}

func newCloseFixture(t *testing.T) *closeFixture {
	t.Helper()
	f := &closeFixture{
		n:      newNode(t),
		byName: make(map[string]Info),
		targets: map[string]ma.Multiaddr{
			"T1": p2pAddr(t, randomPeer(t)),
			"T2": p2pAddr(t, randomPeer(t)),
			"S1": mustAddr(t, "/ip4/127.0.0.1/tcp/7"),
			"S2": mustAddr(t, "/ip4/127.0.0.1/tcp/9"),
		},
	}
	add := func(name string, kind Kind, proto protocol.ID, target string) {
		var info Info
		var err error
		if kind == KindListen {
			info, err = f.n.reg.Listen(t.Context(), ListenRequest{Protocol: proto, Target: f.targets[target]})
		} else {
			info, err = f.n.reg.Forward(t.Context(), ForwardRequest{Protocol: proto, Listen: mustAddr(t, "/ip4/127.0.0.1/tcp/0"), Target: f.targets[target]})
		}
		if err != nil {
			t.Fatalf("adding %s: %v", name, err)
		}
		f.byName[name] = info
	}
	add("l1", KindListen, "/x/a", "S1")
	add("f1", KindForward, "/x/a", "T1")
	add("f2", KindForward, "/x/a", "T2")
	add("l2", KindListen, "/x/b", "S2")
	add("f3", KindForward, "/x/b", "T1")
	return f
}

// TestCloseMatching checks List's order and which entries each Match
// closes.
func TestCloseMatching(t *testing.T) {
	all := []string{"f1", "f2", "f3", "l1", "l2"}
	if got := newCloseFixture(t).names(); !slices.Equal(got, all) {
		t.Fatalf("List order = %v, want %v (forwards first, then listens, each in creation order)", got, all)
	}

	tests := []struct {
		name   string
		match  func(f *closeFixture) Match
		closed []string
	}{
		{"protocol", func(*closeFixture) Match { return Match{Protocol: "/x/a"} }, []string{"f1", "f2", "l1"}},
		{"target", func(f *closeFixture) Match { return Match{Target: f.targets["T1"]} }, []string{"f1", "f3"}},
		{"protocol and target", func(f *closeFixture) Match { return Match{Protocol: "/x/a", Target: f.targets["T1"]} }, []string{"f1"}},
		{"forward listen address", func(f *closeFixture) Match { return Match{Listen: f.byName["f2"].ListenAddr} }, []string{"f2"}},
		{"listen address of listens", func(f *closeFixture) Match { return Match{Listen: p2pAddr(t, f.n.h.ID())} }, []string{"l1", "l2"}},
		{"protocol and listen address", func(f *closeFixture) Match { return Match{Protocol: "/x/b", Listen: p2pAddr(t, f.n.h.ID())} }, []string{"l2"}},
		{"listen target", func(f *closeFixture) Match { return Match{Target: f.targets["S2"]} }, []string{"l2"}},
		{"filters that match nothing together", func(f *closeFixture) Match { return Match{Protocol: "/x/b", Target: f.targets["T2"]} }, nil},
		{"unknown protocol", func(*closeFixture) Match { return Match{Protocol: "/x/none"} }, nil},
		{"all", func(*closeFixture) Match { return Match{All: true} }, all},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newCloseFixture(t)
			got, err := f.n.reg.Close(tc.match(f))
			if err != nil {
				t.Fatal(err)
			}
			if got != len(tc.closed) {
				t.Errorf("Close = %d, want %d", got, len(tc.closed))
			}
			want := slices.DeleteFunc(slices.Clone(all), func(s string) bool { return slices.Contains(tc.closed, s) })
			if left := f.names(); !slices.Equal(left, want) {
				t.Errorf("left = %v, want %v", left, want)
			}
			served := f.n.h.Mux().Protocols()
			for name, info := range f.byName {
				open := !slices.Contains(tc.closed, name)
				if info.Kind == KindForward {
					if refused(t, info.ListenAddr) == open {
						t.Errorf("%s: port refused=%v, want %v", name, open, !open)
					}
					continue
				}
				if slices.Contains(served, info.Protocol) != open {
					t.Errorf("%s: protocol %s served=%v, want %v", name, info.Protocol, !open, open)
				}
			}
		})
	}
}

// TestHooksAndRemove checks the hooks and that Remove removes exactly one
// entry.
func TestHooksAndRemove(t *testing.T) {
	var mu sync.Mutex // guards the slices below
	var added, removed []Info
	changes := 0
	n := newNode(t,
		WithOnAdd(func(i Info) { mu.Lock(); added = append(added, i); mu.Unlock() }),
		WithOnRemove(func(i Info) { mu.Lock(); removed = append(removed, i); mu.Unlock() }),
		WithOnChange(func() { mu.Lock(); changes++; mu.Unlock() }),
	)
	target := p2pAddr(t, randomPeer(t))
	req := ForwardRequest{Protocol: "/x/h", Listen: mustAddr(t, "/ip4/127.0.0.1/tcp/0"), Target: target, Foreground: true}
	one, err := n.reg.Forward(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	two, err := n.reg.Forward(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !one.Foreground || one.Created.IsZero() || one.Kind != KindForward {
		t.Errorf("Info = %+v, want a foreground forward with a creation time", one)
	}

	stale := one
	stale.Created = stale.Created.Add(-1)
	if n.reg.Remove(stale) {
		t.Error("Remove matched an entry with another creation time")
	}
	if !n.reg.Remove(one) {
		t.Fatal("Remove(one) = false")
	}
	if n.reg.Remove(one) {
		t.Error("second Remove(one) = true")
	}
	if l := n.reg.List(); len(l) != 1 || !l[0].ListenAddr.Equal(two.ListenAddr) {
		t.Errorf("List after Remove = %v, want only the second forward", l)
	}
	if got, err := n.reg.Close(Match{Protocol: "/x/h"}); err != nil || got != 1 {
		t.Errorf("Close = %d, %v; want 1, nil", got, err)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(added) != 2 || !added[0].ListenAddr.Equal(one.ListenAddr) || !added[1].ListenAddr.Equal(two.ListenAddr) {
		t.Errorf("OnAdd got %v, want the two forwards", added)
	}
	if len(removed) != 2 || !removed[0].ListenAddr.Equal(one.ListenAddr) || !removed[1].ListenAddr.Equal(two.ListenAddr) {
		t.Errorf("OnRemove got %v, want the two forwards in removal order", removed)
	}
	if changes != 4 {
		t.Errorf("OnChange called %d times, want 4 (2 adds, 1 remove, 1 close)", changes)
	}
}

// TestHooksMayCallList checks that hooks run without the registry lock held
// (a hook calling List would otherwise deadlock) and see the change made.
func TestHooksMayCallList(t *testing.T) {
	var n *node
	var seen []int
	n = newNode(t, WithOnChange(func() { seen = append(seen, len(n.reg.List())) }))
	if _, err := n.reg.Listen(t.Context(), ListenRequest{Protocol: "/x/l", Target: mustAddr(t, "/ip4/127.0.0.1/tcp/7")}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.reg.Close(Match{All: true}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(seen, []int{1, 0}) {
		t.Errorf("List from OnChange saw %v entries, want [1 0]", seen)
	}
}

// TestOptions checks option validation.
func TestOptions(t *testing.T) {
	h := newHost(t)
	s := streams.NewRegistry()
	t.Cleanup(func() { _ = s.Close() })
	tests := []struct {
		name    string
		opt     Option
		wantErr string
	}{
		{"zero dial timeout", WithDialTimeout(0), "creating listener registry: dial timeout must be positive"},
		{"nil finder", WithPeerFinder(nil), "creating listener registry: peer finder is nil"},
		{"nil change hook", WithOnChange(nil), "creating listener registry: change hook is nil"},
		{"nil add hook", WithOnAdd(nil), "creating listener registry: add hook is nil"},
		{"nil remove hook", WithOnRemove(nil), "creating listener registry: remove hook is nil"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(h, s, tc.opt)
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("New: %v, want %q", err, tc.wantErr)
			}
			defer func() {
				if recover() == nil {
					t.Error("NewRegistry did not panic on an invalid option")
				}
			}()
			NewRegistry(h, s, tc.opt)
		})
	}
	if _, err := New(nil, s); err == nil || err.Error() != "creating listener registry: host is nil" {
		t.Errorf("New(nil host): %v", err)
	}
	if _, err := New(h, nil); err == nil || err.Error() != "creating listener registry: stream registry is nil" {
		t.Errorf("New(nil streams): %v", err)
	}
	r, err := New(h, s, WithDialTimeout(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Listen(canceled(), ListenRequest{Protocol: "/x/c", Target: mustAddr(t, "/ip4/127.0.0.1/tcp/7")}); !errors.Is(err, context.Canceled) {
		t.Errorf("Listen with a cancelled context: %v", err)
	}
	if err := r.Shutdown(); err != nil {
		t.Fatal(err)
	}
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
