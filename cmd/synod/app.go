package main

// This file owns the app itself: its global flags, the exit codes every
// subcommand shares, the registry the subcommands' files fill in their init
// functions, and the logger the global flags ask for. It runs on main's
// goroutine.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// Exit codes shared by every subcommand.
const (
	exitOK          = 0
	exitNotFound    = 1 // not found, CAS conflict
	exitUsage       = 2
	exitUnavailable = 3
	exitNoPerm      = 4 // ERR NOPERM: not authenticated, or not allowed
)

// exitError carries an exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

func usageError(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// env names the environment variable that sets a flag: SYNOD_<FLAG>.
func env(flag string) []string {
	return []string{"SYNOD_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))}
}

func newApp() *cli.App {
	return &cli.App{
		Name:    "synod",
		Usage:   "a replicated file store on Multi-Paxos",
		Version: version,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error", EnvVars: env("log-level")},
			&cli.StringFlag{Name: "log-format", Value: "console", Usage: "console or json", EnvVars: env("log-format")},
		},
		Commands: allCommands(),
		OnUsageError: func(c *cli.Context, err error, isSub bool) error {
			return usageError("%v", err)
		},
		ExitErrHandler: func(*cli.Context, error) {}, // main prints and exits
	}
}

// commandMakers is filled by each subcommand's file in an init function, so
// subcommands live in files of their own.
var commandMakers []func() *cli.Command

func allCommands() []*cli.Command {
	var cmds []*cli.Command
	for _, mk := range commandMakers {
		cmds = append(cmds, mk())
	}
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].Name < cmds[j].Name })
	return cmds
}

// newLogger builds the zerolog logger the global flags ask for, on stderr.
func newLogger(c *cli.Context) (zerolog.Logger, error) {
	level, err := zerolog.ParseLevel(c.String("log-level"))
	if err != nil {
		return zerolog.Nop(), usageError("bad --log-level %q", c.String("log-level"))
	}
	var w io.Writer = os.Stderr
	switch c.String("log-format") {
	case "json":
	case "console":
		w = zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: time.TimeOnly}
	default:
		return zerolog.Nop(), usageError("bad --log-format %q: want console or json", c.String("log-format"))
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger(), nil
}
