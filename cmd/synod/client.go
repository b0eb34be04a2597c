package main

// This file owns the shape every client verb shares (put, append, cas, del,
// get, cat, stat, ls, cp, status): their common flags, dialling --addr
// within --timeout, sending the verb's request, printing its reply (as JSON
// with --json) and mapping its error to exit code 1, 2 or 3. A verb is
// declared as a clientVerb and written once here; verbs.go, cp.go and
// status.go hold only what each verb does. Everything runs on the
// command's goroutine.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"synod/wire/line"
)

// maxLocalValue bounds what the client verbs read from a file or stdin: the
// largest value the line client accepts back (16 MiB). The cluster's own
// limit (--max-value, 1 MiB by default) is smaller and answers TOO_LARGE.
const maxLocalValue = 16 << 20

// clientFlags are the flags of every client verb; reads add --consistency.
func clientFlags(read bool) []cli.Flag {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "addr", Value: "127.0.0.1:7000", Usage: "the proxy (or any line-protocol server) to talk to", EnvVars: env("addr")},
		&cli.BoolFlag{Name: "json", Usage: "print results (and server errors) as one JSON object on stdout", EnvVars: env("json")},
		&cli.DurationFlag{Name: "timeout", Value: 30 * time.Second, Usage: "give up after this long", EnvVars: env("timeout")},
	}
	flags = append(flags, tlsClientFlags()...)
	flags = append(flags, authFlags()...)
	if read {
		flags = append(flags, &cli.StringFlag{Name: "consistency", Usage: "read level: linearizable (the server's default), session or stale", EnvVars: env("consistency")})
	}
	return flags
}

// onUsageError makes a bad flag of a subcommand exit 2, like one of the
// app's global flags.
func onUsageError(c *cli.Context, err error, isSubcommand bool) error {
	return usageError("%v (see %s %s --help)", err, c.App.Name, commandPath(c))
}

// commandPath names the command c runs, sub-commands under their parents:
// "get", "member add".
func commandPath(c *cli.Context) string {
	var names []string
	for _, x := range c.Lineage() {
		// The app runs as a command of its own name, at the root.
		if x.Command != nil && x.Command.Name != "" && x.Command.Name != c.App.Name && (len(names) == 0 || names[0] != x.Command.Name) {
			names = append([]string{x.Command.Name}, names...)
		}
	}
	return strings.Join(names, " ")
}

// clientVerb is one client verb, declared as data; command gives it the
// shape every client verb shares.
type clientVerb struct {
	name, usage, description string
	argsUsage                string // "" means argShapes[name]
	read                     bool   // a read: takes --consistency
	min                      bool   // takes --min as well
	// prepare checks the verb's arguments and does what must come before
	// connecting: reading a value from stdin or a local file, refusing
	// --json where the output is raw bytes. Its errors are final.
	prepare func(c *cli.Context) (request, error)
	// flags are the verb's own, besides the shared ones.
	flags []cli.Flag
}

// request is a verb's work once connected.
type request struct {
	// what names the request in errors: "get KEY".
	what string
	// send makes the request. Its error, the server's or the connection's,
	// becomes the verb's exit code and, with --json, is printed on stdout.
	// On success it returns how to print the reply.
	send func(s *session) (output, error)
}

// output prints a successful reply; its error is final (exit code 1).
type output func(s *session) error

// printed is the usual output: v as JSON with --json, text otherwise.
func printed(v any, text string) output {
	return func(s *session) error { return s.print(v, text) }
}

// shaped is prepare for a verb whose positional arguments argShapes
// describes: it checks them and hands them to f.
func shaped(f func(c *cli.Context, a verbArgs) (request, error)) func(c *cli.Context) (request, error) {
	return func(c *cli.Context) (request, error) {
		a, err := parseVerbArgs(c.Command.Name, c.Args().Slice())
		if err != nil {
			return request{}, err
		}
		return f(c, a)
	}
}

// command is the verb as a subcommand of the app.
func (v clientVerb) command() *cli.Command {
	flags := clientFlags(v.read)
	if v.min {
		flags = append(flags, minFlag())
	}
	flags = append(flags, v.flags...)
	argsUsage := v.argsUsage
	if argsUsage == "" {
		argsUsage = argShapes[v.name]
	}
	return &cli.Command{
		Name:         v.name,
		Usage:        v.usage,
		Description:  v.description,
		ArgsUsage:    argsUsage,
		OnUsageError: onUsageError,
		Flags:        flags,
		Action:       v.run,
	}
}

// run is every client verb's action: prepare, connect, send, print.
func (v clientVerb) run(c *cli.Context) error {
	req, err := v.prepare(c)
	if err != nil {
		return err
	}
	s, err := openSession(c)
	if err != nil {
		return err
	}
	defer s.close()
	out, err := req.send(s)
	if err != nil {
		return s.fail(req.what, err)
	}
	return out(s)
}

func minFlag() cli.Flag {
	return &cli.Uint64Flag{Name: "min", Usage: "answer only from a replica that applied this index (e.g. the index of your last write)"}
}

// session is one client verb's connection and output.
type session struct {
	ctx    context.Context
	cancel context.CancelFunc
	addr   string
	json   bool
	out    io.Writer
	cl     *line.Client
}

// openSession checks the common flags and connects. A bad --consistency is
// a usage error before any connection is made.
func openSession(c *cli.Context) (*session, error) {
	level, hasLevel, err := parseConsistency(c)
	if err != nil {
		return nil, err
	}
	s := &session{addr: c.String("addr"), json: c.Bool("json"), out: c.App.Writer}
	timeout := c.Duration("timeout")
	if timeout <= 0 {
		return nil, usageError("--timeout %v: want a positive duration", timeout)
	}
	s.ctx, s.cancel = context.WithTimeout(c.Context, timeout)
	tcfg, err := clientTLS(c)
	if err != nil {
		s.cancel()
		return nil, err
	}
	user, password, err := credentials(c)
	if err != nil {
		s.cancel()
		return nil, err
	}
	cl, err := line.Dial(s.ctx, s.addr, line.Options{TLS: tcfg})
	if err != nil {
		s.cancel()
		return nil, &exitError{code: exitUnavailable, err: fmt.Errorf("cannot reach synod at %s (is `synod up` running? --addr / SYNOD_ADDR choose another): %w", s.addr, err)}
	}
	s.cl = cl
	if user != "" {
		if _, err := cl.Do(s.ctx, line.Request{Cmd: line.CmdAuth, Name: user, Password: password}); err != nil {
			s.close()
			return nil, s.fail("auth", err)
		}
	}
	if hasLevel {
		if err := cl.SetConsistency(s.ctx, level); err != nil {
			s.close()
			return nil, s.fail("consistency", err)
		}
	}
	return s, nil
}

// parseConsistency reads --consistency, if the verb has it and it is set.
func parseConsistency(c *cli.Context) (line.Level, bool, error) {
	name := ""
	for _, f := range c.Command.Flags {
		if f.Names()[0] == "consistency" {
			name = c.String("consistency")
		}
	}
	if name == "" {
		return 0, false, nil
	}
	level, err := line.ParseLevel(name)
	if err != nil {
		return 0, false, usageError("--consistency %q: want linearizable, session or stale", name)
	}
	return level, true, nil
}

func (s *session) close() {
	s.cl.Close()
	s.cancel()
}

// print writes v as JSON when --json is set, or human as text otherwise.
func (s *session) print(v any, human string) error {
	var err error
	if s.json {
		err = json.NewEncoder(s.out).Encode(v)
	} else if human != "" {
		_, err = io.WriteString(s.out, human)
	}
	if err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// jsonError is what --json prints on stdout for a failed request.
type jsonError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Version uint64 `json:"version,omitempty"`
	} `json:"error"`
}

// fail turns a request's error into the command's error with the right exit
// code and, with --json, prints it on stdout too so scripts see it there.
func (s *session) fail(what string, err error) error {
	code := clientExitCode(err)
	err = &verbError{what: what, err: err}
	if s.json {
		var je jsonError
		je.Error.Code = errorCode(err)
		je.Error.Message = err.Error()
		var se *line.ServerError
		if errors.As(err, &se) {
			je.Error.Version = se.Version
		}
		json.NewEncoder(s.out).Encode(je)
	}
	return &exitError{code: code, err: err}
}

// verbError says which request failed, in words for a person: a server's
// NOT_FOUND or CONFLICT reads as such rather than as the protocol's text.
type verbError struct {
	what string
	err  error
}

func (e *verbError) Error() string {
	var se *line.ServerError
	if !errors.As(e.err, &se) {
		return e.what + ": " + e.err.Error()
	}
	switch se.Code {
	case line.CodeNotFound:
		return e.what + ": not found"
	case line.CodeConflict:
		if se.Version == 0 {
			return e.what + ": conflict: the key does not exist"
		}
		return fmt.Sprintf("%s: conflict: the current version is %d", e.what, se.Version)
	}
	if se.Msg == "" {
		return e.what + ": " + se.Code
	}
	return e.what + ": " + se.Code + " " + se.Msg
}

func (e *verbError) Unwrap() error { return e.err }

// clientExitCode maps an error from the line client to the exit codes of
// the client verbs: 1 the key was not found or a CAS found another version,
// 2 the request itself is wrong, 3 the cluster could not serve it (down,
// busy, timed out, broken connection or a server bug), 4 the user may not
// do it (ERR NOPERM).
func clientExitCode(err error) int {
	switch {
	case errors.Is(err, line.ErrNoPerm):
		return exitNoPerm
	case errors.Is(err, line.ErrNotFound), errors.Is(err, line.ErrConflict):
		return exitNotFound
	case errors.Is(err, line.ErrBadRequest), errors.Is(err, line.ErrTooLarge), errors.Is(err, line.ErrInvalidKey):
		return exitUsage
	default:
		return exitUnavailable
	}
}

// errorCode names err for --json: the server's code, or a local one.
func errorCode(err error) string {
	var se *line.ServerError
	switch {
	case errors.As(err, &se):
		return se.Code
	case errors.Is(err, line.ErrTooLarge):
		return line.CodeTooLarge
	case errors.Is(err, line.ErrBadRequest), errors.Is(err, line.ErrInvalidKey):
		return line.CodeBadRequest
	case errors.Is(err, context.DeadlineExceeded):
		return line.CodeTimeout
	default:
		return line.CodeUnavailable
	}
}

// readLimited reads all of r, refusing more than limit bytes.
func readLimited(r io.Reader, limit int64, what string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	if int64(len(b)) > limit {
		return nil, usageError("%s is larger than %d bytes", what, limit)
	}
	return b, nil
}

// stdinValue reads a value the user left off the command line. On a
// terminal it says so, since a silent wait looks like a hang.
func stdinValue(c *cli.Context) ([]byte, error) {
	if f, ok := c.App.Reader.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			fmt.Fprintln(c.App.ErrWriter, "synod: reading the value from stdin (end it with Ctrl-D)")
		}
	}
	return readLimited(c.App.Reader, maxLocalValue, "the value on stdin")
}
