package client_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestClientImportsNoNetworkingCode keeps package client (and so the CLI's
// path to the daemon) free of libp2p and of the daemon's own packages.
func TestClientImportsNoNetworkingCode(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/p2pd/p2pd/client").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	allowed := map[string]bool{
		"github.com/p2pd/p2pd/api":     true,
		"github.com/p2pd/p2pd/client":  true,
		"github.com/p2pd/p2pd/version": true,
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "github.com/libp2p/") ||
			(strings.HasPrefix(pkg, "github.com/p2pd/p2pd/") && !allowed[pkg]) {
			t.Errorf("package client depends on %s", pkg)
		}
	}
}

// TestCLIHasNoHTTPClientOfItsOwn checks that cmd/p2pd reaches the daemon
// only through package client: it does not import net/http itself.
func TestCLIHasNoHTTPClientOfItsOwn(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, "github.com/p2pd/p2pd/cmd/p2pd").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	imports := strings.Fields(string(out))
	for _, pkg := range imports {
		if pkg == "net/http" || pkg == "net/http/httputil" {
			t.Errorf("cmd/p2pd imports %s: talk to the daemon through package client", pkg)
		}
	}
	found := false
	for _, pkg := range imports {
		found = found || pkg == "github.com/p2pd/p2pd/client"
	}
	if !found {
		t.Error("cmd/p2pd does not import package client")
	}
}
