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
