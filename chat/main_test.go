package chat

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
)

// p2pdBin is the p2pd binary the end-to-end tests run, built once by
// TestMain; buildErr says why it could not be built.
var (
	p2pdBin  string
	buildErr error
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(withBinary{m})
}

// withBinary runs the tests with the p2pd binary built in a temporary
// directory (unless -short), removed afterwards.
type withBinary struct{ m *testing.M }

func (w withBinary) Run() int {
	flag.Parse()
	if !testing.Short() {
		dir, err := os.MkdirTemp("", "p2pd-chat-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "temp dir:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		p2pdBin, buildErr = buildP2PD(dir)
	}
	return w.m.Run()
}

// buildP2PD builds ./cmd/p2pd into dir.
func buildP2PD(dir string) (string, error) {
	bin := filepath.Join(dir, "p2pd")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/p2pd")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/p2pd: %v\n%s", err, out)
	}
	return bin, nil
}

// needBinary skips in -short mode and fails when the build failed.
func needBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: skipped in -short mode")
	}
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return p2pdBin
}
