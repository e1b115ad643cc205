package repo

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// lockedRepo is a new repo whose lock this test holds as a daemon.
func lockedRepo(t *testing.T) (*Repo, *Lock) {
	t.Helper()
	r, err := Init(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	l, err := r.Lock(HolderDaemon)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Release() })
	return r, l
}

// TestOneDaemonPerRepo: a second lock on a repo (another process, or another
// open file in this one: flock locks belong to the open file) is refused with
// a message naming the repo, the holder's API and pid; Init is refused too;
// once released, the repo can be locked again.
func TestOneDaemonPerRepo(t *testing.T) {
	r, l := lockedRepo(t)
	if err := l.SetAPI("/ip4/127.0.0.1/tcp/5055"); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("a daemon is already running for %s (API at /ip4/127.0.0.1/tcp/5055, pid %d)", r.Path(), os.Getpid())
	_, err := r.Lock(HolderDaemon)
	var le *LockedError
	if !errors.As(err, &le) || !errors.Is(err, ErrLocked) || err.Error() != want {
		t.Fatalf("second lock: %v\nwant: %s", err, want)
	}
	if _, err := r.Lock(HolderChat); err == nil || err.Error() != want {
		t.Fatalf("chat's lock: %v", err)
	}
	if _, err := Init(r.Path()); err == nil || err.Error() != want {
		t.Fatalf("init under a daemon: %v", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(); err != nil {
		t.Fatalf("second Release: %v", err)
	}
	l2, err := r.Lock(HolderChat)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	_, err = r.Lock(HolderDaemon)
	if want := fmt.Sprintf("p2pd chat is already running for %s with its identity (pid %d)", r.Path(), os.Getpid()); err == nil || err.Error() != want {
		t.Fatalf("lock held by chat: %v\nwant: %s", err, want)
	}
	l2.Release()
	if _, err := Init(r.Path()); err != nil {
		t.Fatalf("init after release: %v", err)
	}
}

// TestLockHolderFallsBackToAPIFile: a daemon that has locked the repo but
// not recorded its API yet is still named, from REPO/api when present.
func TestLockHolderFallsBackToAPIFile(t *testing.T) {
	r, _ := lockedRepo(t)
	_, err := r.Lock(HolderDaemon)
	want := fmt.Sprintf("a daemon is already running for %s (API at an address not known yet, pid %d)", r.Path(), os.Getpid())
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	if err := r.WriteAPIAddr("/unix/tmp/x.sock"); err != nil {
		t.Fatal(err)
	}
	_, err = r.Lock(HolderDaemon)
	want = fmt.Sprintf("a daemon is already running for %s (API at /unix/tmp/x.sock, pid %d)", r.Path(), os.Getpid())
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}

func TestRemoveTempFilesAndMoveAside(t *testing.T) {
	r, err := Init(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{".tunnels.json.tmp-123", ".api.tmp-9", ".probe-77"} {
		if err := os.WriteFile(r.File(n), []byte("half"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := r.RemoveTempFiles()
	if err != nil || len(removed) != 3 {
		t.Fatalf("removed %v, %v", removed, err)
	}
	left, _ := filepath.Glob(filepath.Join(r.Path(), ".*"))
	if len(left) != 0 {
		t.Fatalf("left: %v", left)
	}
	for _, n := range []string{KeyFile, TokenFile, ConfigFile} {
		if _, err := os.Stat(r.File(n)); err != nil {
			t.Fatalf("%s: %v", n, err)
		}
	}

	now := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	for i, want := range []string{"tunnels.json.bad-20260102T150405Z", "tunnels.json.bad-20260102T150405Z-2"} {
		if err := os.WriteFile(r.File(TunnelsFile), []byte{'{', byte('0' + i)}, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := r.MoveAside(TunnelsFile, now)
		if err != nil || got != r.File(want) {
			t.Fatalf("moved to %q (%v), want %s", got, err, want)
		}
		if b, err := os.ReadFile(got); err != nil || string(b) != string([]byte{'{', byte('0' + i)}) {
			t.Fatalf("%s holds %q (%v)", got, b, err)
		}
	}
	if _, err := os.Stat(r.File(TunnelsFile)); !os.IsNotExist(err) {
		t.Fatalf("tunnels.json still there: %v", err)
	}
}
