package main

import (
	"os"
	"os/exec"
	"testing"
)

// TestOtherPlatformsBuild: the Windows binary builds, and every package
// (tests included) vets on macOS; nothing unix- or Linux-only leaks into
// code that every platform compiles. .ci/run runs the same two commands;
// with the build cache warm they cost little here.
func TestOtherPlatformsBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-builds every package: not in -short")
	}
	for _, c := range []struct {
		goos string
		args []string
	}{
		{"windows", []string{"build", "-o", os.DevNull, "."}},
		{"darwin", []string{"vet", "../../..."}},
	} {
		cmd := exec.Command("go", c.args...)
		cmd.Env = append(os.Environ(), "GOOS="+c.goos, "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("GOOS=%s go %v: %v\n%s", c.goos, c.args, err, out)
		}
	}
}
