package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadmeCommandsParse runs every `p2pd ...` line of README.md's examples
// (except daemon and chat, which would start nodes) against an API address
// where nothing answers: each must get past argument checking and fail only
// for the missing daemon (exit 1), never as a usage error (exit 2).
// examplePeer is a valid peer ID for the elided ones in examples.
const examplePeer = "12D3KooWAEYtYAwFkN95p97zyuV2QZWDUnuY2fcbvMDtX7C9bUqF"

func TestReadmeCommandsParse(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	dead := "/unix" + filepath.Join(t.TempDir(), "nobody.sock")
	n := 0
	inCode := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
			continue
		}
		if !inCode {
			continue
		}
		line, _, _ = strings.Cut(line, "#")
		fields := strings.Fields(line)
		if len(fields) < 2 || fields[0] != "p2pd" || fields[1] == "daemon" || fields[1] == "chat" {
			continue
		}
		for i, f := range fields {
			// Examples elide peer IDs ("12D3KooWA..."); use a real one.
			if j := strings.Index(f, "12D3KooW"); j >= 0 && strings.HasSuffix(f, "...") {
				fields[i] = f[:j] + examplePeer
			}
		}
		// Commands that need no daemon succeed; the others get past their
		// argument checks and fail for the missing daemon.
		args, want := fields[1:], exitError
		switch fields[1] {
		case "version", "completion", "help":
			want = exitOK
		case "init":
			args, want = append(args, "--repo", t.TempDir()), exitOK
		default:
			args = append(args, "--repo", t.TempDir(), "--api", dead)
		}
		code, _, errs := runCLI(args...)
		if code != want {
			t.Errorf("README: %q: exit %d, want %d: %s", line, code, want, errs)
		}
		n++
	}
	if n < 10 {
		t.Fatalf("found only %d example commands in README.md", n)
	}
}
