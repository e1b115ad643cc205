package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/p2pd/p2pd/api"
)

// TestFindWithoutDHTPeersSaysSo is the CLI side of item 16 of issue 11: a
// daemon that knows no DHT server cannot ask anyone, and `find` says so on
// stderr and in JSON and exits non-zero instead of printing [] with exit 0.
func TestFindWithoutDHTPeersSaysSo(t *testing.T) {
	n := startDaemon(t, "--bootstrap", "none", "--dht", "server", "--dht-prefix", "/lonefind")
	r := n.cli("find", "nobody-here", "--timeout", "1s", "--json")
	if r.code == 0 || !strings.Contains(r.stderr, "no DHT peers yet: ") {
		t.Fatalf("find with no DHT peers: %s", r)
	}
	var e api.Error
	if err := json.Unmarshal([]byte(r.stdout), &e); err != nil || !strings.HasPrefix(e.Message, "no DHT peers yet: ") || e.Code != api.CodeUnavailable {
		t.Fatalf("find --json with no DHT peers printed %q (%v), want the JSON error", r.stdout, err)
	}
	// Text output: the message on stderr, nothing on stdout.
	r = n.cli("find", "nobody-here", "--timeout", "1s")
	if r.code == 0 || !strings.Contains(r.stderr, "no DHT peers yet: ") || r.stdout != "" {
		t.Fatalf("find (text) with no DHT peers: %s", r)
	}
}
