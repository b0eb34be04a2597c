package main

// This file owns flags after the arguments for the offline commands
// (check, dump, snapshot status, snapshot restore), so that
// `synod snapshot restore FILE --dir D --id N` works as written: urfave/cli
// stops parsing flags at the first argument, which for the client verbs is
// right (a value may start with "--"), but these commands' arguments are
// paths. It also checks their required flags, which urfave/cli would check
// before the late ones were parsed. It runs on the command's goroutine.

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"
)

// withLateFlags makes an offline command's action: flags found among its
// arguments are set on c as if they had come first, then every flag named
// in required must be set (on the command line or through its environment
// variable), then action runs with the arguments that are not flags.
func withLateFlags(required []string, action func(c *cli.Context, args []string) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		args, err := parseLateFlags(c)
		if err != nil {
			return usageError("%v (see %s --help)", err, invocation(c))
		}
		var missing []string
		for _, name := range required {
			if !c.IsSet(name) {
				missing = append(missing, "--"+name)
			}
		}
		if len(missing) > 0 {
			return usageError("%s needs %s", invocation(c), strings.Join(missing, ", "))
		}
		return action(c, args)
	}
}

// parseLateFlags parses what follows the first argument as flags of c's
// command, sets them on c, and returns the arguments that are not flags.
func parseLateFlags(c *cli.Context) ([]string, error) {
	all := c.Args().Slice()
	if len(all) <= 1 {
		return all, nil
	}
	args := []string{all[0]}
	rest := all[1:]
	for len(rest) > 0 {
		fs := flag.NewFlagSet(c.Command.Name, flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		for _, f := range c.Command.Flags {
			if err := f.Apply(fs); err != nil {
				return nil, err
			}
		}
		if err := fs.Parse(rest); err != nil {
			return nil, err
		}
		var serr error
		fs.Visit(func(f *flag.Flag) {
			if err := c.Set(f.Name, f.Value.String()); err != nil && serr == nil {
				serr = fmt.Errorf("--%s: %w", f.Name, err)
			}
		})
		if serr != nil {
			return nil, serr
		}
		rest = fs.Args()
		if len(rest) > 0 {
			args = append(args, rest[0])
			rest = rest[1:]
		}
	}
	return args, nil
}

// invocation names the command c runs, with the app: "synod snapshot restore".
func invocation(c *cli.Context) string {
	var names []string
	for _, ctx := range c.Lineage() {
		if ctx.Command != nil && ctx.Command.Name != "" {
			names = append([]string{ctx.Command.Name}, names...)
		}
	}
	if len(names) == 0 || names[0] != c.App.Name {
		names = append([]string{c.App.Name}, names...)
	}
	return strings.Join(names, " ")
}
