//go:build linux

package daemon

import (
	"context"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestAPISocketMode checks that the API socket is created with mode 0600
// even under a umask of 0 (where a plain unix listener's socket file is
// open to everyone), and that creating it leaves the process umask alone.
func TestAPISocketMode(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir := t.TempDir()
	mode := func(path string) fs.FileMode {
		t.Helper()
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return st.Mode()
	}

	// Without ownerOnly the file is world-usable: what this test guards against.
	plain, err := net.Listen("unix", filepath.Join(dir, "plain.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if m := mode(filepath.Join(dir, "plain.sock")); m.Perm() != 0o777 {
		t.Fatalf("a plain unix socket under umask 0 has mode %v, want 0777 (the test's premise)", m)
	}

	// ownerOnly alone, before any chmod after the fact: bind makes it 0600.
	lc := net.ListenConfig{Control: ownerOnly}
	bound, err := lc.Listen(context.Background(), "unix", filepath.Join(dir, "bound.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer bound.Close()
	if m := mode(filepath.Join(dir, "bound.sock")); m.Perm() != 0o600 || m.Type() != fs.ModeSocket {
		t.Errorf("the socket file bind created has mode %v, want a socket with 0600", m)
	}

	api, err := listenUnix(filepath.Join(dir, "api.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	if m := mode(filepath.Join(dir, "api.sock")); m.Perm() != 0o600 || m.Type() != fs.ModeSocket {
		t.Errorf("API socket has mode %v, want a socket with 0600", m)
	}
	if now := syscall.Umask(0); now != 0 {
		t.Errorf("the process umask changed to %#o while listening", now)
	}
}
