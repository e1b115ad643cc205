package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"

	logging "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/gologshim"

	"github.com/p2pd/p2pd/repo"
)

// Logging defaults: p2pd's own subsystems say what happens to the node
// (info: tunnels added, the DHT joined, a bootstrap that fails); the
// libraries only their errors. GOLOG_LOG_LEVEL overrides both, per
// subsystem if wished ("p2pd/discovery=debug,dht=info").
const (
	defaultLogLevel  = "info"
	libraryLogLevel  = "error"
	defaultLogFormat = "text"
	p2pdSubsystems   = "p2pd/.*"
)

var (
	logLevels  = []string{"debug", "info", "warn", "error"}
	logFormats = []string{"text", "json"}
)

// setupLogging routes go-libp2p's slog output through go-log, so the same
// levels govern every library's logs, and applies the defaults (unless
// GOLOG_LOG_LEVEL is set). The daemon applies its own settings over them.
func setupLogging() {
	gologshim.SetDefaultHandler(logging.SlogHandler())
	slog.SetDefault(slog.New(logging.SlogHandler()))
	if os.Getenv("GOLOG_LOG_LEVEL") == "" {
		logging.SetAllLoggers(logging.LevelError)
		_ = logging.SetLogLevelRegex(p2pdSubsystems, "warn") // the CLI commands: warnings only
	}
}

// logFlags are the daemon's logging flags.
type logFlags struct {
	level, format string
}

func (f *logFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.level, "log-level", defaultLogLevel, "`LEVEL` of p2pd's logs: debug, info, warn or error (GOLOG_LOG_LEVEL, when set, wins)")
	fs.StringVar(&f.format, "log-format", defaultLogFormat, "`FORMAT` of the logs on stderr: text (one line each) or json (one object a line)")
}

// merge lays the logging flags the user set over cfg.
func (f *logFlags) merge(fs *flag.FlagSet, cfg *repo.Config) {
	fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "log-level":
			cfg.LogLevel = f.level
		case "log-format":
			cfg.LogFormat = f.format
		}
	})
}

// checkLogSettings validates the logging settings; src names where a
// setting came from, for errors.
func checkLogSettings(cfg repo.Config, src func(string) string) error {
	if cfg.LogLevel != "" && !slices.Contains(logLevels, cfg.LogLevel) {
		return usagef("invalid %s value %q: want %s", src("log-level"), cfg.LogLevel, strings.Join(logLevels, ", "))
	}
	if cfg.LogFormat != "" && !slices.Contains(logFormats, cfg.LogFormat) {
		return usagef("invalid %s value %q: want text or json", src("log-format"), cfg.LogFormat)
	}
	return nil
}

// applyLogSettings sets up the daemon's logs as cfg says: the format
// (text unless json; GOLOG_LOG_FMT is honoured when neither the flag nor
// config.json names one), and p2pd's level with the libraries at errors,
// unless GOLOG_LOG_LEVEL is set, which then decides every level.
func applyLogSettings(cfg repo.Config) {
	lc := logging.GetConfig()
	switch {
	case cfg.LogFormat == "json":
		lc.Format = logging.JSONOutput
	case cfg.LogFormat == "text" || os.Getenv("GOLOG_LOG_FMT") == "":
		lc.Format = logging.PlaintextOutput
		if isTerminal(os.Stderr) && os.Getenv("NO_COLOR") == "" {
			lc.Format = logging.ColorizedOutput
		}
	}
	envLevels := os.Getenv("GOLOG_LOG_LEVEL") != ""
	if !envLevels {
		lc.Level = logging.LevelError
		lc.SubsystemLevels = map[string]logging.LogLevel{}
	}
	logging.SetupLogging(lc)
	setupLogging()
	if envLevels {
		return
	}
	level := cfg.LogLevel
	if level == "" {
		level = defaultLogLevel
	}
	logging.SetAllLoggers(logging.LevelError)
	if err := logging.SetLogLevelRegex(p2pdSubsystems, level); err != nil {
		fmt.Fprintf(os.Stderr, "p2pd: setting the log level: %v\n", err)
	}
}
