package main

// This file owns the client verbs that read or write one key, or list keys:
// put, append, cas, del, get, cat, stat and ls, each only what it sends and
// prints; client.go gives them their shared shape. They run on the
// command's goroutine.

import (
	"encoding/base64"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/urfave/cli/v2"
)

func init() {
	for _, v := range []clientVerb{
		writeVerb("put", "store VALUE (or stdin) under KEY", func(s *session, a verbArgs) (uint64, error) {
			return s.cl.Put(s.ctx, a.Key, a.Value)
		}),
		writeVerb("append", "append VALUE (or stdin) to KEY's value, creating it", func(s *session, a verbArgs) (uint64, error) {
			return s.cl.Append(s.ctx, a.Key, a.Value)
		}),
		writeVerb("cas", "store VALUE (or stdin) under KEY only if KEY is at VERSION (0: only if it does not exist)", func(s *session, a verbArgs) (uint64, error) {
			return s.cl.CAS(s.ctx, a.Key, a.Version, a.Value)
		}),
		writeVerb("del", "delete KEY", func(s *session, a verbArgs) (uint64, error) {
			return s.cl.Del(s.ctx, a.Key)
		}),
		getVerb, catVerb, statVerb, lsVerb,
	} {
		commandMakers = append(commandMakers, v.command)
	}
}

// writeResult is the --json form of a write.
type writeResult struct {
	Key   string `json:"key"`
	Index uint64 `json:"index"`
}

// writeVerb makes put, append, cas and del: they print "OK <index>", the
// write's place in the cluster's one sequence of commands. A value left off
// the command line is read from stdin before connecting (del has none).
func writeVerb(name, usage string, write func(s *session, a verbArgs) (uint64, error)) clientVerb {
	return clientVerb{name: name, usage: usage, prepare: shaped(func(c *cli.Context, a verbArgs) (request, error) {
		if !a.HasValue && name != "del" {
			var err error
			if a.Value, err = stdinValue(c); err != nil {
				return request{}, err
			}
		}
		return request{what: name + " " + a.Key, send: func(s *session) (output, error) {
			idx, err := write(s, a)
			if err != nil {
				return nil, err
			}
			return printed(writeResult{Key: a.Key, Index: idx}, fmt.Sprintf("OK %d\n", idx)), nil
		}}, nil
	})}
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

var getVerb = clientVerb{
	name: "get", usage: "print KEY's value and a newline (cat prints the exact bytes)", read: true, min: true,
	prepare: shaped(func(c *cli.Context, a verbArgs) (request, error) {
		return request{what: "get " + a.Key, send: func(s *session) (output, error) {
			value, version, err := s.cl.Get(s.ctx, a.Key, c.Uint64("min"))
			if err != nil {
				return nil, err
			}
			human := string(value)
			if !strings.HasSuffix(human, "\n") {
				human += "\n"
			}
			return printed(newValueResult(a.Key, value, version), human), nil
		}}, nil
	}),
}

var catVerb = clientVerb{
	name: "cat", usage: "write KEY's value to stdout, byte for byte", read: true, min: true,
	prepare: shaped(func(c *cli.Context, a verbArgs) (request, error) {
		if c.Bool("json") {
			return request{}, usageError("cat writes raw bytes: use get --json")
		}
		return request{what: "cat " + a.Key, send: func(s *session) (output, error) {
			value, _, err := s.cl.Get(s.ctx, a.Key, c.Uint64("min"))
			if err != nil {
				return nil, err
			}
			return func(s *session) error {
				if _, err := s.out.Write(value); err != nil {
					return fmt.Errorf("cat %s: write: %w", a.Key, err)
				}
				return nil
			}, nil
		}}, nil
	}),
}

// statResult is the --json form of stat.
type statResult struct {
	Key     string `json:"key"`
	Size    uint64 `json:"size"`
	Version uint64 `json:"version"`
}

var statVerb = clientVerb{
	name: "stat", usage: "print KEY's size and version", read: true,
	prepare: shaped(func(c *cli.Context, a verbArgs) (request, error) {
		return request{what: "stat " + a.Key, send: func(s *session) (output, error) {
			size, version, err := s.cl.Stat(s.ctx, a.Key)
			if err != nil {
				return nil, err
			}
			return printed(statResult{Key: a.Key, Size: size, Version: version},
				fmt.Sprintf("key      %s\nsize     %d\nversion  %d\n", a.Key, size, version)), nil
		}}, nil
	}),
}

// listResult is the --json form of ls.
type listResult struct {
	Prefix string   `json:"prefix"`
	Keys   []string `json:"keys"`
}

var lsVerb = clientVerb{
	name: "ls", usage: "list the keys that start with PREFIX (all keys without one), one a line", read: true,
	prepare: shaped(func(c *cli.Context, a verbArgs) (request, error) {
		return request{what: strings.TrimSpace("ls " + a.Prefix), send: func(s *session) (output, error) {
			keys, err := s.cl.List(s.ctx, a.Prefix)
			if err != nil {
				return nil, err
			}
			if keys == nil {
				keys = []string{}
			}
			var b strings.Builder
			for _, k := range keys {
				b.WriteString(k)
				b.WriteByte('\n')
			}
			return printed(listResult{Prefix: a.Prefix, Keys: keys}, b.String()), nil
		}}, nil
	}),
}
