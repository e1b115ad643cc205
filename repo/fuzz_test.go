package repo

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/p2pd/p2pd/api"
)

// FuzzConfigFile feeds config.json contents to Config: it never panics,
// accepts only valid UTF-8 with nothing after the JSON object, and what it
// accepts survives SaveConfig and a second Config unchanged.
func FuzzConfigFile(f *testing.F) {
	f.Add([]byte(`{"listen":[],"bootstrap":[],"rendezvous":[],"dht":"auto","dht_prefix":"/ipfs","deny":[],"allow":[],"api":"/ip4/127.0.0.1/tcp/5055","mdns":true}`))
	f.Add([]byte(`{"api":"/unix/tmp/p2pd.sock","api_allow_remote":true,"dial_timeout":"30s","max_procs":2}`))
	f.Add([]byte(`{"dht":"server"} {"dht":"off"}`))
	f.Add([]byte("{\"rendezvous\":[\"caf\xe9\"]}"))
	f.Add([]byte(`{"listen":"not a list"}`))
	f.Add([]byte(`{"future_field":1}`))
	f.Add([]byte(`null`))
	dir := f.TempDir()
	r, err := Init(dir)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(r.File(ConfigFile), b, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := r.Config()
		if err != nil {
			return
		}
		if err := api.Decode(b, new(Config)); err != nil {
			t.Fatalf("Config accepted what api.Decode refuses (%v): %q", err, b)
		}
		if err := r.SaveConfig(c); err != nil {
			t.Fatal(err)
		}
		again, err := r.Config()
		if err != nil {
			t.Fatalf("config.json written by SaveConfig does not read back: %v", err)
		}
		if !reflect.DeepEqual(c, again) {
			t.Fatalf("config changed through a save: %+v, then %+v", c, again)
		}
	})
}

// TestConfigTrailingDataAndInvalidUTF8 is the config.json side of item 10
// of issue 11: what follows the object, and invalid UTF-8, are refused
// instead of ignored or rewritten.
func TestConfigTrailingDataAndInvalidUTF8(t *testing.T) {
	r, err := Init(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ body, want string }{
		{`{"dht":"server"} {"dht":"off"}`, "unexpected data after the JSON value at offset 16"},
		{"{\"rendezvous\":[\"caf\xe9\"]}", "not valid UTF-8"},
	} {
		os.WriteFile(r.File(ConfigFile), []byte(tt.body), 0o600)
		_, err := r.Config()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("config %q: got %v, want %q", tt.body, err, tt.want)
		}
	}
}
