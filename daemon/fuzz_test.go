package daemon

import (
	"errors"
	"os"
	"testing"

	"github.com/p2pd/p2pd/repo"
)

// FuzzTunnelsFile feeds tunnels.json contents to the daemon's reader: it
// never panics, a file it cannot read at all is errUnreadable, and every
// entry it returns has a known kind.
func FuzzTunnelsFile(f *testing.F) {
	for _, s := range []string{
		`{"version":1,"tunnels":[{"kind":"forward","protocol":"/x/a","listen_address":"/ip4/127.0.0.1/tcp/2222","target_address":"/p2p/12D3KooWAEYtYAwFkN95p97zyuV2QZWDUnuY2fcbvMDtX7C9bUqF"},{"kind":"listen","protocol":"/x/b","target_address":"/ip4/127.0.0.1/tcp/22","allow_peers":["12D3KooWAEYtYAwFkN95p97zyuV2QZWDUnuY2fcbvMDtX7C9bUqF"],"report_peer_id":true}]}`,
		`{"version":1,"tunnels":[{"kind":"forward","protocol":7},{"kind":"listen","protocol":"/x/b","target_address":"/ip4/127.0.0.1/tcp/22","future":true}]}`,
		`{"version":2,"tunnels":[],"next":{"a":1}}`,
		`{"version":1,"tunnels":[{"kind":"udp"}]}`,
		`{"version":1,"tunnels":null}`,
		`{"version":1,"tunnels":[]}}`,
		`[]`,
		`not json`,
		``,
	} {
		f.Add([]byte(s))
	}
	r, err := repo.Init(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(r.File(repo.TunnelsFile), b, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := readTunnels(r)
		if err != nil {
			if !errors.Is(err, errUnreadable) {
				t.Fatalf("error for %q is not errUnreadable: %v", b, err)
			}
			return
		}
		for _, e := range got.entries {
			if e.Kind != "forward" && e.Kind != "listen" {
				t.Fatalf("entry of unknown kind %q returned from %q", e.Kind, b)
			}
		}
	})
}

// TestTunnelsFileStrict is the tunnels.json side of item 10 of issue 11:
// data after the object makes the file unreadable (it is moved aside, not
// half-read), and an entry with invalid UTF-8 is skipped (kept in the file)
// instead of being restored with its text rewritten.
func TestTunnelsFileStrict(t *testing.T) {
	r, err := repo.Init(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	good := `{"kind":"listen","protocol":"/x/ok","target_address":"/ip4/127.0.0.1/tcp/22"}`
	bad := "{\"kind\":\"listen\",\"protocol\":\"/x/caf\xe9\",\"target_address\":\"/ip4/127.0.0.1/tcp/22\"}"
	for _, tt := range []struct {
		body             string
		unreadable       bool
		entries, skipped int
	}{
		{`{"version":1,"tunnels":[]}}`, true, 0, 0},
		{`{"version":1,"tunnels":[]} {"version":1,"tunnels":[]}`, true, 0, 0},
		{`{"version":1,"tunnels":[` + good + `,` + bad + `]}`, false, 1, 1},
	} {
		os.WriteFile(r.File(repo.TunnelsFile), []byte(tt.body), 0o600)
		got, err := readTunnels(r)
		if tt.unreadable != errors.Is(err, errUnreadable) || len(got.entries) != tt.entries || len(got.skipped) != tt.skipped {
			t.Errorf("%q: %d entries, %d skipped, err %v", tt.body, len(got.entries), len(got.skipped), err)
		}
	}
}
