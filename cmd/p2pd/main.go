// Command p2pd is the p2pd daemon and the CLI that drives it.
//
// `p2pd daemon` runs a libp2p node; the other subcommands talk to a running
// daemon through its control API (package client), except `init`, `chat`
// and `version`, which work on their own. main only parses arguments, sets
// up logging and signals, runs one subcommand and turns its error into an
// exit code.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	logging "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/gologshim"
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
}

// command is one subcommand.
type command struct {
	name  string
	args  string // the synopsis after the name, e.g. "[flags] PROTOCOL TARGET"
	short string // one line for the command list
	help  string // ARGUMENTS and EXAMPLES, printed by --help
	run   func(ctx context.Context, e *env, cmd *command, args []string) error
}

func commands() []*command {
	return []*command{
		initCmd, daemonCmd, idCmd, peersCmd, connectCmd, findCmd,
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

func main() {
	setupLogging()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}, os.Args[1:])
	stop()
	os.Exit(code)
}

// run executes one command line and returns the exit code.
func run(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if len(args) > 1 {
			if c := lookup(args[1]); c != nil {
				printHelp(e.stdout, c, nil)
				return exitOK
			}
		}
		printCommands(e.stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	c := lookup(args[0])
	if c == nil {
		fmt.Fprintf(e.stderr, "p2pd: unknown command %q\n\n", args[0])
		printCommands(e.stderr)
		return exitUsage
	}
	err := c.run(ctx, e, c, args[1:])
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(e.stderr, "p2pd %s: %s\nrun `p2pd %s --help` for usage\n", c.name, ue.msg, c.name)
		return exitUsage
	}
	fmt.Fprintf(e.stderr, "p2pd %s: %s\n", c.name, err)
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
	fmt.Fprintln(w, "\nUSAGE\n  p2pd COMMAND [flags] [arguments]\n\nCOMMANDS")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.short)
	}
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

// setupLogging routes go-libp2p's slog output through go-log, so
// GOLOG_LOG_LEVEL governs every library's logs. Without GOLOG_LOG_LEVEL,
// p2pd's own loggers show warnings and the libraries only errors.
func setupLogging() {
	gologshim.SetDefaultHandler(logging.SlogHandler())
	slog.SetDefault(slog.New(logging.SlogHandler()))
	if os.Getenv("GOLOG_LOG_LEVEL") == "" {
		logging.SetAllLoggers(logging.LevelError)
		_ = logging.SetLogLevelRegex("p2pd/.*", "warn")
	}
}
