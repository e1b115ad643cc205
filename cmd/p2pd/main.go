// Command p2pd is the p2pd daemon and the CLI that drives it.
//
// `p2pd daemon` runs a libp2p node; the other subcommands talk to a running
// daemon through its control API (package client), except `init`, `chat`
// and `version`, which work on their own. main only parses arguments, sets
// up logging and signals, runs one subcommand and turns its error into an
// exit code.
//
// The command tree is a cobra one (cli.go): cobra dispatches, suggests
// commands for typos, prints `--version` and generates shell completion.
// Each subcommand keeps parsing its own flags with the standard flag
// package (flags anywhere among the arguments, one or two dashes), so the
// command line scripts rely on stays exactly as SPEC.md has it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the command failed
	exitUsage = 2 // the command line was wrong
)

// env is what a subcommand may touch of the outside world.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer

	// describe, when set, makes parseArgs hand the command's flag set
	// here and stop the command (errDescribed) instead of parsing: this is
	// how the command tree learns each command's flags for help and
	// completion without running anything.
	describe func(fs *flag.FlagSet)
}

// command is one subcommand.
type command struct {
	name  string
	args  string // the synopsis after the name, e.g. "[flags] PROTOCOL TARGET"
	short string // one line for the command list
	help  string // ARGUMENTS and EXAMPLES, printed by --help
	run   func(ctx context.Context, e *env, cmd *command, args []string) error

	// complete, when set, lists the words that may come next after args,
	// for shell completion of positional arguments.
	complete func(args []string) []string
}

func commands() []*command {
	return []*command{
		initCmd, daemonCmd, idCmd, statusCmd, peersCmd, connectCmd, findCmd,
		listenCmd, forwardCmd, lsCmd, closeCmd, streamsCmd, eventsCmd,
		chatCmd, versionCmd,
	}
}

// usageError is a mistake on the command line: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// commandError is the error of one subcommand, for the "p2pd NAME: "
// prefix of its message.
type commandError struct {
	name string
	err  error
}

func (e *commandError) Error() string { return e.err.Error() }
func (e *commandError) Unwrap() error { return e.err }

func main() {
	setupLogging()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}, os.Args[1:])
	stop()
	os.Exit(code)
}

// run executes one command line and returns the exit code.
func run(ctx context.Context, e *env, args []string) int {
	root := newRootCommand(ctx, e)
	root.SetArgs(hoistGlobalFlags(args))
	err := root.ExecuteContext(ctx)
	switch {
	case err == nil || errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, errNoCommand):
		return exitUsage // the command list is printed
	}
	name := ""
	var ce *commandError
	if errors.As(err, &ce) {
		name = " " + ce.name
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(e.stderr, "p2pd%s: %s\n", name, ue.msg)
		if name != "" {
			fmt.Fprintf(e.stderr, "run `p2pd%s --help` for usage\n", name)
		} else {
			fmt.Fprintln(e.stderr, "run `p2pd help` for the list of commands")
		}
		return exitUsage
	}
	fmt.Fprintf(e.stderr, "p2pd%s: %s\n", name, err)
	return exitError
}

func lookup(name string) *command {
	for _, c := range commands() {
		if c.name == name {
			return c
		}
	}
	return nil
}

func printCommands(w io.Writer) {
	fmt.Fprintln(w, "p2pd: reach TCP services on other machines by peer ID, over libp2p.")
	fmt.Fprintln(w, "\nUSAGE\n  p2pd [--repo DIR] [--api ADDR] [--json] COMMAND [flags] [arguments]\n\nCOMMANDS")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.short)
	}
	fmt.Fprintf(w, "  %-10s %s\n", "completion", "print a shell completion script: bash, zsh or fish")
	fmt.Fprintln(w, "\nRun `p2pd COMMAND --help` for a command's flags, arguments and examples.")
}

func printHelp(w io.Writer, c *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "USAGE\n  p2pd %s %s\n\n%s\n", c.name, c.args, c.short)
	if fs != nil {
		if flags := formatFlags(fs); flags != "" {
			fmt.Fprintf(w, "\nFLAGS\n%s", flags)
		}
	}
	if c.help != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.help))
	}
}

// formatFlags lists fs's flags the way users type them: --long-name (and
// -x for one-letter aliases), the value's placeholder, the usage and any
// non-zero default.
func formatFlags(fs *flag.FlagSet) string {
	var b strings.Builder
	fs.VisitAll(func(f *flag.Flag) {
		dash := "--"
		if len(f.Name) == 1 {
			dash = "-"
		}
		name, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(&b, "  %s%s", dash, f.Name)
		if name != "" {
			fmt.Fprintf(&b, " %s", name)
		}
		fmt.Fprintf(&b, "\n      %s", usage)
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "[]" {
			fmt.Fprintf(&b, " (default %s)", f.DefValue)
		}
		b.WriteString("\n")
	})
	return b.String()
}
