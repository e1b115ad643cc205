package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/p2pd/p2pd/version"
)

// errDescribed stops a command run by describeFlags once its flags are known.
var errDescribed = errors.New("flags described")

// errNoCommand is `p2pd` alone: the command list, exit code 2.
var errNoCommand = &usageError{msg: "no command given"}

// describeFlags returns c's flag set, learnt by running c with an env
// whose describe hook stops it in parseArgs, before anything is done.
func describeFlags(ctx context.Context, c *command) *flag.FlagSet {
	var fs *flag.FlagSet
	_ = c.run(ctx, &env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard,
		describe: func(f *flag.FlagSet) { fs = f }}, c, nil)
	return fs
}

// globalFlags are the flags that may also come before the command name
// (`p2pd --repo R ls`), and whether each takes a value. They are moved
// after the command name, where the command's own flags parse them.
var globalFlags = map[string]bool{"repo": true, "api": true, "json": false}

// hoistGlobalFlags moves the global flags that come before the command
// name to just after it. Anything else is left for cobra to judge.
// takesNoGlobals are the commands that do not read a repo or a daemon, so
// global flags before them are accepted and have no effect.
var takesNoGlobals = map[string]bool{"version": true, "completion": true, "help": true}

func hoistGlobalFlags(args []string) []string {
	var globals []string
	i := 0
	for i < len(args) {
		a := args[i]
		if a == "--" || !strings.HasPrefix(a, "-") {
			break
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		takesValue, ok := globalFlags[name]
		if !ok {
			return args
		}
		globals = append(globals, a)
		i++
		if takesValue && !hasValue && i < len(args) {
			globals = append(globals, args[i])
			i++
		}
	}
	if len(globals) == 0 || i == len(args) || args[i] == "--" {
		return args
	}
	if takesNoGlobals[args[i]] {
		return args[i:] // `p2pd --repo R version`: the repo changes nothing
	}
	out := make([]string, 0, len(args))
	out = append(out, args[i])
	out = append(out, globals...)
	return append(out, args[i+1:]...)
}

// newRootCommand builds the command tree for one invocation. Each
// subcommand parses its own arguments (DisableFlagParsing); its flags are
// registered with cobra too, for completion only.
func newRootCommand(ctx context.Context, e *env) *cobra.Command {
	root := &cobra.Command{
		Use:           "p2pd",
		Short:         "reach TCP services on other machines by peer ID, over libp2p",
		Version:       version.Build().String(),
		SilenceErrors: true,
		SilenceUsage:  true,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			return unknownCommand(cmd, args[0])
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			printCommands(e.stdout)
			return errNoCommand
		},
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	root.SuggestionsMinimumDistance = 2
	root.SetIn(e.stdin)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.SetVersionTemplate("p2pd {{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usagef("%s", err) })
	root.Flags().String("repo", "", "the node's repo DIR (default $P2PD_REPO or ~/.p2pd)")
	root.Flags().String("api", "", "the daemon's API address (default: read from REPO/api)")
	root.Flags().Bool("json", false, "print JSON")

	helps := map[*cobra.Command]func(){}
	add := func(c *command) {
		sub, help := subcommand(ctx, e, c)
		helps[sub] = help
		root.AddCommand(sub)
	}
	for _, c := range commands() {
		add(c)
	}
	add(completionCommand(root))
	root.SetHelpFunc(func(cmd *cobra.Command, _ []string) {
		if h, ok := helps[cmd]; ok {
			h()
			return
		}
		printCommands(e.stdout)
	})
	root.SetHelpCommand(&cobra.Command{
		Use:   "help [COMMAND]",
		Short: "show the commands, or one command's help",
		ValidArgsFunction: func(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var names []cobra.Completion
			for _, c := range root.Commands() {
				if c.IsAvailableCommand() {
					names = append(names, cobra.CompletionWithDesc(c.Name(), c.Short))
				}
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				printCommands(e.stdout)
				return nil
			}
			sub, _, err := root.Find(args[:1])
			if err != nil || sub == root {
				return unknownCommand(root, args[0])
			}
			return sub.Help()
		},
	})
	return root
}

// unknownCommand is the error for a command name that is not one,
// suggesting the nearest ones.
func unknownCommand(root *cobra.Command, name string) error {
	msg := fmt.Sprintf("unknown command %q", name)
	if s := root.SuggestionsFor(name); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %q?)", s[0])
		for _, more := range s[1:] {
			msg = strings.TrimSuffix(msg, "?)") + fmt.Sprintf(" or %q?)", more)
		}
	}
	return usagef("%s", msg)
}

// completionShells are the shells `p2pd completion` writes scripts for.
var completionShells = []string{"bash", "zsh", "fish"}

// subcommand wraps c for the tree, with the function that prints its help.
func subcommand(ctx context.Context, e *env, c *command) (*cobra.Command, func()) {
	fs := describeFlags(ctx, c)
	sub := &cobra.Command{
		Use:                c.name,
		Short:              c.short,
		DisableFlagParsing: true,
		SilenceErrors:      true,
		SilenceUsage:       true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := c.run(cmd.Context(), e, c, args); err != nil {
				return &commandError{name: c.name, err: err}
			}
			return nil
		},
	}
	if fs != nil {
		sub.Flags().AddGoFlagSet(fs)
		sub.Flags().VisitAll(func(f *pflag.Flag) {
			// The `NAME` quotes are for flag.UnquoteUsage, not for a shell.
			f.Usage = strings.ReplaceAll(f.Usage, "`", "")
		})
	}
	if c.complete != nil {
		sub.ValidArgsFunction = func(_ *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
			return c.complete(args), cobra.ShellCompDirectiveNoFileComp
		}
	}
	return sub, func() { printHelp(e.stdout, c, fs) }
}

// completionCommand is `p2pd completion SHELL`, which needs the tree.
func completionCommand(root *cobra.Command) *command {
	return &command{
		name:  "completion",
		args:  "bash|zsh|fish",
		short: "print a shell completion script: bash, zsh or fish",
		help: `Completes commands and flags, and suggests nearby commands for a typo.

EXAMPLES
  p2pd completion bash > /etc/bash_completion.d/p2pd
  source <(p2pd completion bash)                       # this shell only
  p2pd completion zsh > "${fpath[1]}/_p2pd"
  p2pd completion fish > ~/.config/fish/completions/p2pd.fish`,
		complete: func(args []string) []string {
			if len(args) > 0 {
				return nil
			}
			return completionShells
		},
		run: func(ctx context.Context, e *env, c *command, args []string) error {
			fs := newFlagSet(e, c)
			pos, err := parseArgs(e, c, fs, args)
			if err != nil {
				return err
			}
			if len(pos) == 0 {
				return usagef("missing SHELL: one of %s", strings.Join(completionShells, ", "))
			}
			if err := wantArgs(pos, "SHELL"); err != nil {
				return err
			}
			switch pos[0] {
			case "bash":
				return root.GenBashCompletionV2(e.stdout, true)
			case "zsh":
				return root.GenZshCompletion(e.stdout)
			case "fish":
				return root.GenFishCompletion(e.stdout, true)
			}
			return usagef("unknown shell %q: want one of %s", pos[0], strings.Join(completionShells, ", "))
		},
	}
}
