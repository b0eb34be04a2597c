package main

// This file owns the client verbs' positional arguments: their shapes, the
// checks made before any connection (keys, versions, values) and cp's SRC
// and DST. Pure functions, called on the command's goroutine.

import (
	"strconv"
	"strings"

	"synod/wire/line"
)

// verbArgs are a client verb's positional arguments, checked.
type verbArgs struct {
	Key      string
	Version  uint64 // cas: the version the key must have, 0 = must not exist
	Value    []byte
	HasValue bool   // false for put/append/cas: the value comes from stdin
	Prefix   string // ls
}

// argShapes says which positional arguments each client verb takes.
var argShapes = map[string]string{
	"put":    "KEY [VALUE]",
	"append": "KEY [VALUE]",
	"cas":    "KEY VERSION [VALUE]",
	"get":    "KEY",
	"cat":    "KEY",
	"del":    "KEY",
	"stat":   "KEY",
	"ls":     "[PREFIX]",
	"status": "",
}

// parseVerbArgs checks args against verb's shape. A value is one argument:
// quote a value with spaces, or leave it off and send it on stdin. Flags
// come before the arguments, so "--" is never needed to pass a value such
// as "--x", and a leading "--" would be taken as a value too.
func parseVerbArgs(verb string, args []string) (verbArgs, error) {
	shape, ok := argShapes[verb]
	if !ok {
		return verbArgs{}, usageError("unknown verb %q", verb)
	}
	fields := strings.Fields(shape)
	lo, hi := 0, len(fields)
	for _, f := range fields {
		if !strings.HasPrefix(f, "[") {
			lo++
		}
	}
	if len(args) < lo || len(args) > hi {
		for _, arg := range args[min(len(args), hi):] {
			if strings.HasPrefix(arg, "-") && len(arg) > 1 {
				return verbArgs{}, usageError("%s takes %s; %q looks like a flag, and flags go before the arguments: synod %s [flags] %s", verb, shape, arg, verb, shape)
			}
		}
		if len(args) > hi && (verb == "put" || verb == "append" || verb == "cas") {
			return verbArgs{}, usageError("%s takes %s: quote a value that has spaces, or send it on stdin", verb, shape)
		}
		if shape == "" {
			return verbArgs{}, usageError("%s takes no arguments", verb)
		}
		return verbArgs{}, usageError("%s takes %s, got %d argument(s)", verb, shape, len(args))
	}
	var a verbArgs
	for i, arg := range args {
		switch strings.Trim(fields[i], "[]") {
		case "KEY":
			if err := checkKey(arg); err != nil {
				return verbArgs{}, err
			}
			a.Key = arg
		case "PREFIX":
			if arg != "" {
				if err := checkKey(arg); err != nil {
					return verbArgs{}, err
				}
			}
			a.Prefix = arg
		case "VERSION":
			v, err := strconv.ParseUint(arg, 10, 64)
			if err != nil {
				return verbArgs{}, usageError("version %q: want a number (0: the key must not exist)", arg)
			}
			a.Version = v
		case "VALUE":
			a.Value, a.HasValue = []byte(arg), true
		}
	}
	return a, nil
}

// checkKey refuses a key no server accepts, before connecting.
func checkKey(key string) error {
	if !line.ValidKey(key, 0) {
		return usageError("invalid key %q: want 1 to %d bytes of printable UTF-8 without spaces", key, line.DefaultMaxKey)
	}
	return nil
}

// cpEnd is one side of `synod cp`: a key (written ":key"), a local path, or
// "-" for stdin or stdout.
type cpEnd struct {
	Key   string
	Path  string
	IsKey bool
	Std   bool // "-"
}

func (e cpEnd) String() string {
	switch {
	case e.IsKey:
		return ":" + e.Key
	case e.Std:
		return "-"
	default:
		return e.Path
	}
}

// parseCpArgs reads SRC and DST of `synod cp`. A key is written with a
// leading colon, as scp writes a remote path: "photo.jpg :img/cat.jpg"
// uploads, ":img/cat.jpg out.jpg" downloads, "-" is stdin or stdout, and
// ":a :b" copies within the store. A local file whose name starts with a
// colon is reached as "./:name".
func parseCpArgs(args []string) (src, dst cpEnd, err error) {
	if len(args) != 2 {
		return src, dst, usageError("cp takes SRC DST, got %d argument(s): keys are written :key, - is stdin or stdout", len(args))
	}
	ends := make([]cpEnd, 2)
	for i, arg := range args {
		switch {
		case strings.HasPrefix(arg, ":"):
			if err := checkKey(arg[1:]); err != nil {
				return src, dst, err
			}
			ends[i] = cpEnd{Key: arg[1:], IsKey: true}
		case arg == "-":
			ends[i] = cpEnd{Std: true}
		case arg == "":
			return src, dst, usageError("cp: empty path")
		default:
			ends[i] = cpEnd{Path: arg}
		}
	}
	src, dst = ends[0], ends[1]
	if !src.IsKey && !dst.IsKey {
		return src, dst, usageError("cp %s %s: one side must be a key, written with a leading colon (:key)", src, dst)
	}
	return src, dst, nil
}
