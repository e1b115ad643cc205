package gateway

import (
	"errors"
	"strings"
	"testing"

	"github.com/p2pd/p2pd/listeners"
)

// FuzzParsePath: a gateway path either parses into a peer (or a name), a
// protocol that can be negotiated and a path for the peer that, after the
// prefix taken off, is the rest of the request's path; or it is refused as
// a malformed gateway path.
func FuzzParsePath(f *testing.F) {
	const id = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"
	for _, s := range []string{
		"/p2p/" + id + "/http/index.html?q", "/p2p/" + id + "/http", "/p2p/" + id + "/x/web/1.0/http/a/b/",
		"/p2p/@team/x/web/http/", "/p2p/" + id + "/x/%0A/http/", "/p2p/%zz/http/", "/p2p//x//http", "/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		tg, err := parsePath(path)
		if err != nil {
			if !errors.Is(err, errBadPath) {
				t.Fatalf("%q: error %v is not a malformed path", path, err)
			}
			return
		}
		if (tg.peer == "") == (tg.name == "") {
			t.Fatalf("%q: peer %q and name %q: want exactly one", path, tg.peer, tg.name)
		}
		if tg.proto != HTTPProtocol && !strings.HasPrefix(string(tg.proto), "/x/") {
			t.Fatalf("%q: protocol %q", path, tg.proto)
		}
		if err := listeners.ValidateProtocol(tg.proto); err != nil {
			t.Fatalf("%q: protocol %q: %v", path, tg.proto, err)
		}
		if !strings.HasPrefix(tg.rest, "/") || (path != tg.prefix+tg.rest && !(path == tg.prefix && tg.rest == "/")) {
			t.Fatalf("%q: prefix %q and rest %q do not make up the path", path, tg.prefix, tg.rest)
		}
	})
}
