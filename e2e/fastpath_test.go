package e2e

import (
	"context"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestFastPathOff runs a tunnel through two daemons whose fast path is
// switched off (P2PD_FAST_PATH=off: the plain bridge and go-libp2p's own
// TLS): the bytes must arrive as they do with it on.
func TestFastPathOff(t *testing.T) {
	t.Setenv("P2PD_FAST_PATH", "off")
	a, b := pair(t)
	for _, n := range []*node{a, b} {
		if !strings.Contains(n.errb.String(), "fast path off") {
			t.Fatalf("daemon %s did not say its fast path is off; stderr:\n%s", n.id, n.errb.String())
		}
	}
	const size = 16 << 20
	svc := startService(t, sourceHandler(11, size))
	addr := tunnel(t, a, b, "/x/plain", svc.maddr())
	want, _, _ := sha(randomStream(11, size))
	c := dial(t, addr)
	c.CloseWrite()
	got, n, err := sha(c)
	if err != nil || n != size || got != want {
		t.Fatalf("received %d bytes, sha %s (err %v); want %d bytes, sha %s", n, got, err, size, want)
	}
}

// TestFastPathBadValue: a value of P2PD_FAST_PATH other than on or off
// stops the daemon at start, naming the variable and what it takes.
func TestFastPathBadValue(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, baseArgs(t.TempDir())...)
	cmd.Env = append(cmd.Environ(), "P2PD_FAST_PATH=fast")
	cmd.Stdout = io.Discard
	out := &lockedBuffer{}
	cmd.Stderr = out
	err := cmd.Run()
	if err == nil {
		t.Fatal("the daemon started with P2PD_FAST_PATH=fast")
	}
	if want := `P2PD_FAST_PATH="fast": want on or off`; !strings.Contains(out.String(), want) {
		t.Fatalf("stderr does not say %q:\n%s", want, out.String())
	}
}
