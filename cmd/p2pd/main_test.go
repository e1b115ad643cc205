package main

import (
	"bytes"
	"context"
	"flag"
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

func TestMaxProcs(t *testing.T) {
	tests := []struct {
		set  int
		env  string
		cpus int
		want int
	}{
		{0, "", 2, 1},
		{0, "", 1, 1},
		{0, "", 8, 4},
		{0, "", 3, 1},
		{0, "2", 8, 0}, // $GOMAXPROCS: the runtime already applied it
		{3, "2", 8, 3}, // the flag wins
		{6, "", 2, 6},
	}
	for _, tt := range tests {
		if got := maxProcs(tt.set, tt.env, tt.cpus); got != tt.want {
			t.Errorf("maxProcs(%d, %q, %d) = %d, want %d", tt.set, tt.env, tt.cpus, got, tt.want)
		}
	}
}
