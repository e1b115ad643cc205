package repo

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInitCreatesPrivateFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node")
	r, err := Init(dir)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]os.FileMode{"": 0o700, KeyFile: 0o600, TokenFile: 0o600, ConfigFile: 0o600} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != want {
			t.Errorf("%q: mode %#o, want %#o", name, got, want)
		}
	}
	id1, err := r.PeerID()
	if err != nil {
		t.Fatal(err)
	}
	// A second Init (and Open) keeps the identity.
	r2, err := Init(dir)
	if err != nil {
		t.Fatal(err)
	}
	id2, _ := r2.PeerID()
	r3, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	id3, _ := r3.PeerID()
	if id1 != id2 || id1 != id3 {
		t.Fatalf("peer id changed: %s %s %s", id1, id2, id3)
	}
	b, _ := os.ReadFile(filepath.Join(dir, KeyFile))
	if len(b) != 68 {
		t.Errorf("identity.key is %d bytes, want the 68-byte protobuf encoding of an Ed25519 key", len(b))
	}
	tok, err := r.Token()
	if err != nil || len(tok) != 64 {
		t.Fatalf("token %q, err %v", tok, err)
	}
}

func TestIdentityErrors(t *testing.T) {
	tests := []struct {
		name    string
		mangle  func(t *testing.T, dir string)
		wantErr string
	}{
		{"corrupt key", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, KeyFile), []byte("garbage"), 0o600)
		}, "is corrupt"},
		{"group readable key", func(t *testing.T, dir string) {
			os.Chmod(filepath.Join(dir, KeyFile), 0o640)
		}, "has mode 0640, want 0600"},
		{"world readable token", func(t *testing.T, dir string) {
			os.Chmod(filepath.Join(dir, TokenFile), 0o644)
		}, "has mode 0644, want 0600"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			r, err := Init(dir)
			if err != nil {
				t.Fatal(err)
			}
			before, _ := os.ReadFile(filepath.Join(dir, KeyFile))
			tt.mangle(t, dir)
			_, errID := r.Identity()
			_, errTok := r.Token()
			_, errInit := Init(dir)
			err = errID
			if err == nil {
				err = errTok
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want an error containing %q", err, tt.wantErr)
			}
			if tt.name != "world readable token" && errInit == nil {
				t.Fatalf("Init accepted a bad key")
			}
			after, _ := os.ReadFile(filepath.Join(dir, KeyFile))
			if tt.name == "corrupt key" && string(after) != "garbage" {
				t.Fatalf("corrupt key was replaced")
			}
			_ = before
		})
	}
}

func TestOpenMissing(t *testing.T) {
	_, err := Open(filepath.Join(t.TempDir(), "nope"))
	if err == nil || !strings.Contains(err.Error(), "repo not initialized") {
		t.Fatalf("got %v", err)
	}
}

func TestReadOnlyRepo(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root ignores directory permissions; the e2e tests cover this as a non-writable path")
	}
	dir := t.TempDir()
	if _, err := Init(dir); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o500)
	defer os.Chmod(dir, 0o700)
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "not writable") {
		t.Fatalf("got %v", err)
	}
}

func TestAPIAddrFile(t *testing.T) {
	r, err := Init(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.WriteAPIAddr("/ip4/127.0.0.1/tcp/1"); err != nil {
		t.Fatal(err)
	}
	// Another daemon's address is left alone.
	if err := r.RemoveAPIAddr("/ip4/127.0.0.1/tcp/2"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(r.File(APIFile)); err != nil {
		t.Fatal("api file removed for a foreign address")
	}
	if err := r.RemoveAPIAddr("/ip4/127.0.0.1/tcp/1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(r.File(APIFile)); !os.IsNotExist(err) {
		t.Fatal("api file still there")
	}
}

func TestConfigRoundTrip(t *testing.T) {
	r, err := Init(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.Config()
	if err != nil {
		t.Fatal(err)
	}
	if c.DHT != "auto" || !c.MDNS || len(c.Listen) != 0 {
		t.Fatalf("defaults: %+v", c)
	}
	c.Rendezvous = []string{"x"}
	if err := r.SaveConfig(c); err != nil {
		t.Fatal(err)
	}
	c2, _ := r.Config()
	if len(c2.Rendezvous) != 1 || c2.Rendezvous[0] != "x" {
		t.Fatalf("got %+v", c2)
	}
	os.WriteFile(r.File(ConfigFile), []byte(`{"bogus": 1}`), 0o600)
	if _, err := r.Config(); err == nil || !strings.Contains(err.Error(), "unknown field") {
		t.Fatalf("got %v", err)
	}
}
