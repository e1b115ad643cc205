package e2e

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

// textLogLine is the start of every line the daemon logs in text format.
var textLogLine = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\S+\t(DEBUG|INFO|WARN|ERROR)\t`)

// TestFirstStartLogs starts a daemon whose only bootstrap peer is down:
// at the default level it says so in one human line, retries quietly, and
// says when it has joined the DHT once the peer is back. Every line is one
// text record.
func TestFirstStartLogs(t *testing.T) {
	boot := startDaemon(t, "--bootstrap", "none", "--dht", "server", "--dht-prefix", "/e2e-logs")
	bootAddr := boot.addr()
	boot.kill()
	a := startDaemon(t, "--bootstrap", bootAddr, "--dht-prefix", "/e2e-logs")
	const warning = "cannot reach the bootstrap peer (connection refused); mDNS is off, so no peer will be found until one is reachable; see README 'A private network'"
	eventually(t, time.Minute, func() error {
		if !strings.Contains(a.errb.String(), warning) {
			return fmt.Errorf("no warning about the bootstrap peer yet")
		}
		return nil
	})
	boot.restartSamePort()
	eventually(t, 2*time.Minute, func() error {
		if !strings.Contains(a.errb.String(), "joined the DHT") {
			return fmt.Errorf("no line saying the DHT was joined")
		}
		return nil
	})
	logs := a.errb.String()
	if n := strings.Count(logs, "cannot reach"); n != 1 {
		t.Errorf("the bootstrap warning came %d times, want once (retries are quiet):\n%s", n, logs)
	}
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		if !textLogLine.MatchString(line) {
			t.Errorf("not a one-line text log record: %q", line)
		}
		if strings.Contains(line, "DEBUG") {
			t.Errorf("a debug record at the default level: %q", line)
		}
	}
}

// TestLogFlags checks --log-format json and --log-level.
func TestLogFlags(t *testing.T) {
	n := startDaemon(t, "--bootstrap", "none", "--dht", "off", "--log-format", "json", "--log-level", "debug")
	svc := startService(t, echoHandler)
	if r := n.cli("listen", "/x/logged", svc.maddr()); r.code != 0 {
		t.Fatalf("listen: %s", r)
	}
	eventually(t, 30*time.Second, func() error {
		if !strings.Contains(n.errb.String(), `"msg":"listen added"`) {
			return fmt.Errorf("no JSON record of the listen")
		}
		return nil
	})
	for _, line := range strings.Split(strings.TrimSpace(n.errb.String()), "\n") {
		if !strings.HasPrefix(line, "{") || !strings.HasSuffix(line, "}") {
			t.Errorf("not a one-line JSON record: %q", line)
		}
	}
	quiet := startDaemon(t, "--bootstrap", "none", "--dht", "off", "--log-level", "error")
	if r := quiet.cli("listen", "/x/quiet", svc.maddr()); r.code != 0 {
		t.Fatalf("listen: %s", r)
	}
	if err := quiet.stop(); err != nil {
		t.Fatal(err)
	}
	if logs := quiet.errb.String(); logs != "" {
		t.Errorf("--log-level error logged:\n%s", logs)
	}
}
