package main

import (
	"encoding/base64"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/urfave/cli/v2"
)

func init() {
	commandMakers = append(commandMakers,
		writeVerb("put", "store VALUE (or stdin) under KEY"),
		writeVerb("append", "append VALUE (or stdin) to KEY's value, creating it"),
		writeVerb("cas", "store VALUE (or stdin) under KEY only if KEY is at VERSION (0: only if it does not exist)"),
		writeVerb("del", "delete KEY"),
		getCommand, catCommand, statCommand, lsCommand)
}

// writeResult is the --json form of a write.
type writeResult struct {
	Key   string `json:"key"`
	Index uint64 `json:"index"`
}

// writeVerb makes put, append, cas and del: they print "OK <index>", the
// write's place in the cluster's one sequence of commands.
func writeVerb(name, usage string) func() *cli.Command {
	return func() *cli.Command {
		return &cli.Command{
			Name:         name,
			Usage:        usage,
			ArgsUsage:    argShapes[name],
			OnUsageError: onUsageError,
			Flags:        clientFlags(false),
			Action: func(c *cli.Context) error {
				a, err := parseVerbArgs(name, c.Args().Slice())
				if err != nil {
					return err
				}
				if !a.HasValue && name != "del" {
					if a.Value, err = stdinValue(c); err != nil {
						return err
					}
				}
				s, err := openSession(c)
				if err != nil {
					return err
				}
				defer s.close()
				var idx uint64
				switch name {
				case "put":
					idx, err = s.cl.Put(s.ctx, a.Key, a.Value)
				case "append":
					idx, err = s.cl.Append(s.ctx, a.Key, a.Value)
				case "cas":
					idx, err = s.cl.CAS(s.ctx, a.Key, a.Version, a.Value)
				case "del":
					idx, err = s.cl.Del(s.ctx, a.Key)
				}
				if err != nil {
					return s.fail(name+" "+a.Key, err)
				}
				return s.print(writeResult{Key: a.Key, Index: idx}, fmt.Sprintf("OK %d\n", idx))
			},
		}
	}
}

// valueResult is the --json form of get: the value as a string when it is
// UTF-8 text, otherwise in base64 under value_base64.
type valueResult struct {
	Key         string  `json:"key"`
	Value       *string `json:"value,omitempty"`
	ValueBase64 *string `json:"value_base64,omitempty"`
	Version     uint64  `json:"version"`
	Size        int     `json:"size"`
}

func newValueResult(key string, value []byte, version uint64) valueResult {
	r := valueResult{Key: key, Version: version, Size: len(value)}
	if utf8.Valid(value) {
		s := string(value)
		r.Value = &s
	} else {
		s := base64.StdEncoding.EncodeToString(value)
		r.ValueBase64 = &s
	}
	return r
}

func minFlag() cli.Flag {
	return &cli.Uint64Flag{Name: "min", Usage: "answer only from a replica that applied this index (e.g. the index of your last write)"}
}

func getCommand() *cli.Command {
	return &cli.Command{
		Name:         "get",
		Usage:        "print KEY's value and a newline (cat prints the exact bytes)",
		ArgsUsage:    argShapes["get"],
		OnUsageError: onUsageError,
		Flags:        append(clientFlags(true), minFlag()),
		Action: func(c *cli.Context) error {
			a, err := parseVerbArgs("get", c.Args().Slice())
			if err != nil {
				return err
			}
			s, err := openSession(c)
			if err != nil {
				return err
			}
			defer s.close()
			value, version, err := s.cl.Get(s.ctx, a.Key, c.Uint64("min"))
			if err != nil {
				return s.fail("get "+a.Key, err)
			}
			human := string(value)
			if !strings.HasSuffix(human, "\n") {
				human += "\n"
			}
			return s.print(newValueResult(a.Key, value, version), human)
		},
	}
}

func catCommand() *cli.Command {
	return &cli.Command{
		Name:         "cat",
		Usage:        "write KEY's value to stdout, byte for byte",
		ArgsUsage:    argShapes["cat"],
		OnUsageError: onUsageError,
		Flags:        append(clientFlags(true), minFlag()),
		Action: func(c *cli.Context) error {
			a, err := parseVerbArgs("cat", c.Args().Slice())
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return usageError("cat writes raw bytes: use get --json")
			}
			s, err := openSession(c)
			if err != nil {
				return err
			}
			defer s.close()
			value, _, err := s.cl.Get(s.ctx, a.Key, c.Uint64("min"))
			if err != nil {
				return s.fail("cat "+a.Key, err)
			}
			if _, err := s.out.Write(value); err != nil {
				return fmt.Errorf("cat %s: write: %w", a.Key, err)
			}
			return nil
		},
	}
}

// statResult is the --json form of stat.
type statResult struct {
	Key     string `json:"key"`
	Size    uint64 `json:"size"`
	Version uint64 `json:"version"`
}

func statCommand() *cli.Command {
	return &cli.Command{
		Name:         "stat",
		Usage:        "print KEY's size and version",
		ArgsUsage:    argShapes["stat"],
		OnUsageError: onUsageError,
		Flags:        clientFlags(true),
		Action: func(c *cli.Context) error {
			a, err := parseVerbArgs("stat", c.Args().Slice())
			if err != nil {
				return err
			}
			s, err := openSession(c)
			if err != nil {
				return err
			}
			defer s.close()
			size, version, err := s.cl.Stat(s.ctx, a.Key)
			if err != nil {
				return s.fail("stat "+a.Key, err)
			}
			return s.print(statResult{Key: a.Key, Size: size, Version: version},
				fmt.Sprintf("key      %s\nsize     %d\nversion  %d\n", a.Key, size, version))
		},
	}
}

// listResult is the --json form of ls.
type listResult struct {
	Prefix string   `json:"prefix"`
	Keys   []string `json:"keys"`
}

func lsCommand() *cli.Command {
	return &cli.Command{
		Name:         "ls",
		Usage:        "list the keys that start with PREFIX (all keys without one), one a line",
		ArgsUsage:    argShapes["ls"],
		OnUsageError: onUsageError,
		Flags:        clientFlags(true),
		Action: func(c *cli.Context) error {
			a, err := parseVerbArgs("ls", c.Args().Slice())
			if err != nil {
				return err
			}
			s, err := openSession(c)
			if err != nil {
				return err
			}
			defer s.close()
			keys, err := s.cl.List(s.ctx, a.Prefix)
			if err != nil {
				return s.fail(strings.TrimSpace("ls "+a.Prefix), err)
			}
			if keys == nil {
				keys = []string{}
			}
			var b strings.Builder
			for _, k := range keys {
				b.WriteString(k)
				b.WriteByte('\n')
			}
			return s.print(listResult{Prefix: a.Prefix, Keys: keys}, b.String())
		},
	}
}
