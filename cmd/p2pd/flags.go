package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/p2pd/p2pd/addr"
	"github.com/p2pd/p2pd/client"
)

// newFlagSet returns a flag set for c whose errors come back to us (no
// printing, no exit) and whose --help prints c's help.
func newFlagSet(e *env, c *command) *flag.FlagSet {
	fs := flag.NewFlagSet("p2pd "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parseArgs parses flags anywhere among the arguments (flags after
// positional arguments are common: `p2pd listen /x/a /ip4/... --foreground`)
// and returns the positional arguments. "--" ends flag parsing.
func parseArgs(e *env, c *command, fs *flag.FlagSet, args []string) ([]string, error) {
	if e.describe != nil {
		e.describe(fs)
		return nil, errDescribed
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				printHelp(e.stdout, c, fs)
				return nil, flag.ErrHelp
			}
			return nil, usagef("%s", err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) > 0 && len(rest) < len(args) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// wantArgs checks the number of positional arguments.
func wantArgs(pos []string, names ...string) error {
	if len(pos) < len(names) {
		return usagef("missing %s", strings.Join(names[len(pos):], " and "))
	}
	if len(pos) > len(names) {
		return usagef("unexpected argument %q", pos[len(names)])
	}
	return nil
}

// listFlag is a repeatable flag whose values may also be comma-separated.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

// clientFlags are the flags of every command that talks to a daemon.
type clientFlags struct {
	repo string
	api  string
	json bool
}

func addClientFlags(fs *flag.FlagSet) *clientFlags {
	f := &clientFlags{}
	fs.StringVar(&f.repo, "repo", "", "the node's repo `DIR` (default $P2PD_REPO or ~/.p2pd)")
	fs.StringVar(&f.api, "api", "", "the daemon's API `ADDR`: PORT, HOST:PORT, a multiaddr or /unix/PATH (default: read from REPO/api)")
	fs.BoolVar(&f.json, "json", false, "print JSON")
	return f
}

// client builds the API client the flags describe.
func (f *clientFlags) client() (client.Client, error) {
	api := f.api
	if api != "" {
		m, err := addr.Local(api)
		if err == nil {
			api = m.String()
			_, err = client.ParseAPIAddr(api)
		}
		if err != nil {
			return nil, usagef("invalid --api value %q: want PORT, HOST:PORT, /ip4/HOST/tcp/PORT or /unix/PATH", f.api)
		}
	}
	return client.NewDefaultClient(&client.Config{Repo: f.repo, APIAddr: api})
}

// printJSON prints v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// explain words common client errors with a next step.
func explain(err error) error {
	var ce *client.Error
	if errors.As(err, &ce) && errors.Is(err, client.ErrUnauthorized) {
		return fmt.Errorf("%s (check that --repo names the daemon's repo)", ce.Message)
	}
	return err
}

// printJSONLine prints v as one line of JSON.
func printJSONLine(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}

// call is one parsed invocation of a command that talks to the daemon.
type call struct {
	e   *env
	pos []string // the positional arguments, as many as the command names
	cf  *clientFlags
	cl  client.Client
}

// clientFlagSet returns a flag set for c with the client flags on it; the
// command adds its own flags before calling parse.
func clientFlagSet(e *env, c *command) (*flag.FlagSet, *clientFlags) {
	fs := newFlagSet(e, c)
	return fs, addClientFlags(fs)
}

// parseCall parses args (flags anywhere), requires exactly the positional
// arguments names, and builds the API client (no I/O yet).
func parseCall(e *env, c *command, fs *flag.FlagSet, cf *clientFlags, args []string, names ...string) (*call, error) {
	pos, err := parseArgs(e, c, fs, args)
	if err != nil {
		return nil, err
	}
	if err := wantArgs(pos, names...); err != nil {
		return nil, err
	}
	cl, err := cf.client()
	if err != nil {
		return nil, err
	}
	return &call{e: e, pos: pos, cf: cf, cl: cl}, nil
}

// show prints v as indented JSON with --json, and otherwise calls text.
func (k *call) show(v any, text func(w io.Writer)) error {
	if k.cf.json {
		return printJSON(k.e.stdout, v)
	}
	text(k.e.stdout)
	return nil
}
