package main

// This file owns `synod check DIR`: the command line of the offline data
// directory check (checkdir.go does the looking), its output, one finding
// a line or JSON, and its exit code: 0 when all is well, 1 when something
// is damaged, lost or refused, 2 for bad usage. It runs on the command's
// goroutine and never writes to DIR.

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"synod/node"
)

func init() { commandMakers = append(commandMakers, checkCommand) }

// checkReport is the --json form of `synod check`.
type checkReport struct {
	Dir      string    `json:"dir"`
	OK       bool      `json:"ok"`
	Errors   int       `json:"errors"`
	Warnings int       `json:"warnings"`
	Findings []finding `json:"findings"`
}

// maxValueFlag is --max-value for the offline commands: snapshot lines are
// bounded by the largest value, so they must be read with the replica's.
func maxValueFlag() cli.Flag {
	return &cli.IntFlag{Name: "max-value", Value: node.DefaultConfig().MaxValue, Usage: "the replicas' --max-value: the largest file a snapshot may hold", EnvVars: env("max-value")}
}

func checkCommand() *cli.Command {
	return &cli.Command{
		Name:      "check",
		Usage:     "verify a stopped replica's data directory, offline (it never writes to it)",
		ArgsUsage: "DIR",
		Description: "Checks IDENTITY, the acceptor file, JOIN, every snapshot, every line of the log\n" +
			"(checksums, batch headers, the segment manifest; a torn last batch, which the node cuts\n" +
			"off by itself, is told apart from damage to acknowledged data, which it refuses) and\n" +
			"whether they fit together. One finding a line: ok, warning (the node copes with it at\n" +
			"its next start) or error (damage, lost state, or a directory the node refuses), naming\n" +
			"file and line. Exit 0 when there is no error, 1 when there is one, 2 for bad usage.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print the findings as one JSON object"},
			maxValueFlag(),
			&cli.StringFlag{Name: "cluster", Usage: "also check that IDENTITY names this cluster"},
			&cli.Uint64Flag{Name: "id", Usage: "also check that IDENTITY names this replica"},
		},
		OnUsageError: onUsageError,
		Action:       withLateFlags(nil, runCheck),
	}
}

func runCheck(c *cli.Context, args []string) error {
	if len(args) != 1 {
		return usageError("check wants one argument, the data directory (see synod check --help)")
	}
	dir := args[0]
	findings, err := checkDataDir(dir, checkOptions{maxValue: c.Int("max-value"), cluster: c.String("cluster"), id: c.Uint64("id")})
	if err != nil {
		return usageError("check %s: %v", dir, err)
	}
	rep := checkReport{Dir: dir, Findings: findings}
	for _, f := range findings {
		switch f.Level {
		case levelError:
			rep.Errors++
		case levelWarning:
			rep.Warnings++
		}
	}
	rep.OK = rep.Errors == 0
	if c.Bool("json") {
		err = json.NewEncoder(c.App.Writer).Encode(rep)
	} else {
		err = writeFindings(c.App.Writer, rep)
	}
	if err != nil {
		return fmt.Errorf("check %s: write output: %w", dir, err)
	}
	if !rep.OK {
		return &exitError{code: 1, err: fmt.Errorf("check %s: %s", dir, plural(rep.Errors, "error"))}
	}
	return nil
}

// writeFindings prints one finding a line, then a summary.
func writeFindings(w io.Writer, rep checkReport) error {
	var b strings.Builder
	for _, f := range rep.Findings {
		where := f.File
		if where == "" {
			where = "(all)"
		}
		if f.Line > 0 {
			where = fmt.Sprintf("%s:%d", where, f.Line)
		}
		fmt.Fprintf(&b, "%-7s %s: %s\n", f.Level, where, f.Message)
	}
	switch {
	case rep.Errors > 0:
		fmt.Fprintf(&b, "%s: %s, %s\n", rep.Dir, plural(rep.Errors, "error"), plural(rep.Warnings, "warning"))
	case rep.Warnings > 0:
		fmt.Fprintf(&b, "%s: no damage (%s)\n", rep.Dir, plural(rep.Warnings, "warning"))
	default:
		fmt.Fprintf(&b, "%s: all is well\n", rep.Dir)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// plural writes "1 error", "2 errors".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
