package main

import (
	"bytes"
	"context"
	"flag"
	"os/exec"
	"strings"
	"testing"
)

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(context.Background(), &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb}, args)
	return code, out.String(), errb.String()
}

func TestUsage(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		code      int
		out, errs string
	}{
		{"no command", nil, exitUsage, "COMMANDS", ""},
		{"help", []string{"help"}, exitOK, "p2pd COMMAND --help", ""},
		{"help for a command", []string{"help", "forward"}, exitOK, "USAGE\n  p2pd forward [flags] PROTOCOL LISTEN TARGET", ""},
		{"--help flag", []string{"listen", "--help"}, exitOK, "--allow-peer ID", ""},
		{"unknown command", []string{"frob"}, exitUsage, "", `p2pd: unknown command "frob"`},
		{"unknown flag", []string{"id", "--nope"}, exitUsage, "", "p2pd id: flag provided but not defined: -nope\nrun `p2pd id --help` for usage"},
		{"extra argument", []string{"peers", "x"}, exitUsage, "", `p2pd peers: unexpected argument "x"`},
		{"missing arguments", []string{"forward", "/x/a"}, exitUsage, "", "p2pd forward: missing LISTEN and TARGET"},
		{"version", []string{"version"}, exitOK, "p2pd 0.", ""},
		{"version shows go-libp2p", []string{"version"}, exitOK, "go-libp2p: v0.51.0", ""},
		{"--version", []string{"--version"}, exitOK, "p2pd 0.", ""},
		{"did you mean", []string{"lss"}, exitUsage, "", `p2pd: unknown command "lss" (did you mean "ls"?)`},
		{"did you mean, help", []string{"help", "fowrard"}, exitUsage, "", `unknown command "fowrard" (did you mean "forward"?)`},
		{"global flag before the command", []string{"--repo", "/nonexistent/r", "ls"}, exitError, "", "p2pd ls: no daemon is running for repo /nonexistent/r"},
		{"global flags with =", []string{"--json", "--repo=/nonexistent/r", "ls"}, exitError, "", "p2pd ls: no daemon is running for repo /nonexistent/r"},
		{"unknown flag before the command", []string{"--nope", "ls"}, exitUsage, "", "p2pd: unknown flag: --nope"},
		{"completion without a shell", []string{"completion"}, exitUsage, "", "p2pd completion: missing SHELL: one of bash, zsh, fish"},
		{"completion for an unknown shell", []string{"completion", "tcsh"}, exitUsage, "", `p2pd completion: unknown shell "tcsh"`},
		{"completion help", []string{"completion", "--help"}, exitOK, "p2pd completion bash|zsh|fish", ""},
		{"the command list names completion", []string{"help"}, exitOK, "completion", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := runCLI(tt.args...)
			if code != tt.code || !strings.Contains(out, tt.out) || !strings.Contains(errs, tt.errs) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
					code, out, errs, tt.code, tt.out, tt.errs)
			}
		})
	}
}

func TestHoistGlobalFlags(t *testing.T) {
	tests := []struct{ in, want string }{
		{"--repo R ls", "ls --repo R"},
		{"--repo=R --json ls -x", "ls --repo=R --json -x"},
		{"-api 5055 forward /x/a 1 /p2p/X", "forward -api 5055 /x/a 1 /p2p/X"},
		{"ls --repo R", "ls --repo R"},
		{"--repo R", "--repo R"},                           // no command: cobra's to judge
		{"--version", "--version"},                         // not a global flag
		{"--repo R --version ls", "--repo R --version ls"}, // a non-global flag: left alone
		{"--repo R -- ls", "--repo R -- ls"},
		{"--repo R version", "version"}, // version reads no repo
	}
	for _, tt := range tests {
		if got := strings.Join(hoistGlobalFlags(strings.Fields(tt.in)), " "); got != tt.want {
			t.Errorf("hoistGlobalFlags(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestCompletionScripts checks that each completion script is produced and
// that the bash one is valid bash, and that completion knows every
// command's flags.
func TestCompletionScripts(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		code, out, errs := runCLI("completion", sh)
		if code != exitOK || !strings.Contains(out, "p2pd") {
			t.Fatalf("completion %s: exit %d, stderr %q, %d bytes", sh, code, errs, len(out))
		}
		if sh != "bash" {
			continue
		}
		bash, err := exec.LookPath("bash")
		if err != nil {
			t.Skip("no bash to check the script with")
		}
		cmd := exec.Command(bash, "-n")
		cmd.Stdin = strings.NewReader(out)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("bash -n on the completion script: %v: %s", err, b)
		}
	}
	for _, tt := range []struct{ args, want string }{
		{"__complete li", "listen"},
		{"__complete listen --al", "--allow-peer"},
		{"__complete daemon --dht-p", "--dht-prefix"},
		{"__complete streams ", "close"},
		{"__complete completion ", "fish"},
		{"__complete --repo R forward --for", "--foreground"},
	} {
		args := strings.Split(tt.args, " ")
		code, out, errs := runCLI(args...)
		if code != exitOK || !strings.Contains(out, tt.want) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want %q", tt.args, code, out, errs, tt.want)
		}
	}
}

func TestParseArgsIntersperses(t *testing.T) {
	c := &command{name: "t"}
	e := &env{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
	tests := []struct {
		args  []string
		pos   []string
		fg    bool
		allow string
	}{
		{[]string{"/x/a", "/ip4/127.0.0.1/tcp/1", "--foreground"}, []string{"/x/a", "/ip4/127.0.0.1/tcp/1"}, true, ""},
		{[]string{"--allow-peer", "A,B", "/x/a", "--foreground", "T"}, []string{"/x/a", "T"}, true, "A,B"},
		{[]string{"/x/a", "--", "--foreground"}, []string{"/x/a", "--foreground"}, false, ""},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fg := fs.Bool("foreground", false, "")
		var allow listFlag
		fs.Var(&allow, "allow-peer", "")
		pos, err := parseArgs(e, c, fs, tt.args)
		if err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		if strings.Join(pos, " ") != strings.Join(tt.pos, " ") || *fg != tt.fg || allow.String() != tt.allow {
			t.Fatalf("%v: pos %q fg %v allow %q; want %q %v %q", tt.args, pos, *fg, allow.String(), tt.pos, tt.fg, tt.allow)
		}
	}
}
