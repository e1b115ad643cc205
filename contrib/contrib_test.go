// Package contrib_test checks the files in contrib/ that p2pd ships for
// running it: the systemd unit.
package contrib_test

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// unit reads a systemd unit into section -> key -> values.
func unit(t *testing.T, path string) map[string]map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
			out[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s: not a key=value line in a section: %q", path, line)
			}
			out[section][k] = append(out[section][k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSystemdUnit checks that the unit runs the daemon hardened, as its own
// user, with its repo in the state directory, restarting on failure.
func TestSystemdUnit(t *testing.T) {
	u := unit(t, "systemd/p2pd.service")
	svc := u["Service"]
	want := map[string]string{
		"ExecStart":             "/usr/local/bin/p2pd daemon",
		"User":                  "p2pd",
		"StateDirectory":        "p2pd",
		"StateDirectoryMode":    "0700",
		"Environment":           "P2PD_REPO=/var/lib/p2pd",
		"NoNewPrivileges":       "yes",
		"ProtectSystem":         "strict",
		"ProtectHome":           "yes",
		"Restart":               "on-failure",
		"CapabilityBoundingSet": "",
	}
	for k, v := range want {
		got, ok := svc[k]
		if !ok || got[len(got)-1] != v {
			t.Errorf("[Service] %s = %q, want %q", k, got, v)
		}
	}
	if got := u["Install"]["WantedBy"]; len(got) != 1 || got[0] != "multi-user.target" {
		t.Errorf("[Install] WantedBy = %q", got)
	}
}
