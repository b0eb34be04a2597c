package main

// This file owns `synod user add|del|passwd|grant|revoke|list` and `synod
// role add|del|grant|revoke|list`: the users and roles of a cluster whose
// proxies run with --auth, managed through a proxy as an admin (USER and
// ROLE on the line protocol), and the --user / --password-file flags every
// client verb authenticates with. They run on the command's goroutine. A
// password never comes from a flag's value (ps would show it): it is read
// from a file, from SYNOD_PASSWORD, or from the first line of stdin.

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"synod/proxy"
	"synod/wire/line"
)

func init() { commandMakers = append(commandMakers, userCommand, roleCommand) }

// authFlags are the client verbs' credentials.
func authFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "user", Usage: "authenticate as this user (AUTH) before the request", EnvVars: env("user")},
		&cli.StringFlag{Name: "password-file", Usage: "file whose first line is --user's password (default: $SYNOD_PASSWORD)", EnvVars: env("password-file")},
	}
}

// readPassword reads the first line of file, or of r when file is "-".
func readPassword(file string, stdin io.Reader) (string, error) {
	var r io.Reader = stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return "", fmt.Errorf("password: %w", err)
		}
		defer f.Close()
		r = f
	}
	l, err := bufio.NewReader(io.LimitReader(r, line.MaxPasswordLen+2)).ReadString('\n')
	if err != nil && (err != io.EOF || l == "") {
		return "", fmt.Errorf("password from %s: %w", file, err)
	}
	pw := strings.TrimRight(l, "\r\n")
	if !line.ValidPassword(pw) {
		return "", usageError("password from %s: want 1 to %d printable bytes, no spaces at its ends", file, line.MaxPasswordLen)
	}
	return pw, nil
}

// credentials reads --user and its password: "" when --user is not set.
func credentials(c *cli.Context) (user, password string, err error) {
	user = c.String("user")
	if user == "" {
		return "", "", nil
	}
	if !line.ValidName(user) {
		return "", "", usageError("--user %q: want 1 to %d letters, digits, . _ @ -", user, line.MaxNameLen)
	}
	if f := c.String("password-file"); f != "" {
		password, err = readPassword(f, c.App.Reader)
		return user, password, err
	}
	password = os.Getenv("SYNOD_PASSWORD")
	if password == "" {
		return "", "", usageError("--user %s needs --password-file or SYNOD_PASSWORD", user)
	}
	return user, password, nil
}

// authVerb is a USER or ROLE sub-command.
type authVerb struct {
	name, usage, args string
	cmd               line.Cmd
	newPassword       bool // reads the new password (--new-password-file, else stdin)
}

func (v authVerb) command(group string) *cli.Command {
	flags := clientFlags(false)
	if v.newPassword {
		flags = append(flags, &cli.StringFlag{Name: "new-password-file", Value: "-", Usage: "file whose first line is the new password (- for stdin)"})
	}
	return &cli.Command{
		Name: v.name, Usage: v.usage, ArgsUsage: v.args, Flags: flags, OnUsageError: onUsageError,
		Action: func(c *cli.Context) error {
			want := len(strings.Fields(v.args))
			if c.NArg() != want {
				return usageError("%s %s takes %s, got %d argument(s)", group, v.name, v.args, c.NArg())
			}
			a := c.Args().Slice()
			req := line.Request{Cmd: v.cmd}
			switch v.cmd {
			case line.CmdRoleGrant, line.CmdRoleRevoke:
				p, ok := line.ParsePerm(a[1])
				if !ok {
					return usageError("permission %q: want read, write or readwrite", a[1])
				}
				req.Name, req.Perm, req.Prefix = a[0], p, a[2]
			case line.CmdUserGrant, line.CmdUserRevoke:
				req.Name, req.Role = a[0], a[1]
			case line.CmdUserList, line.CmdRoleList:
			default:
				req.Name = a[0]
			}
			if v.newPassword {
				pw, err := readPassword(c.String("new-password-file"), c.App.Reader)
				if err != nil {
					return err
				}
				req.Password = pw
			}
			if _, err := line.AppendRequest(nil, req); err != nil {
				return usageError("%v", err)
			}
			s, err := openSession(c)
			if err != nil {
				return err
			}
			defer s.close()
			what := group + " " + v.name
			rep, err := s.cl.Do(s.ctx, req)
			if err != nil {
				return s.fail(what, err)
			}
			if len(rep.Lines) > 0 || v.cmd == line.CmdUserList || v.cmd == line.CmdRoleList {
				return s.print(rep.Lines, strings.Join(rep.Lines, "\n")+strings.Repeat("\n", min(len(rep.Lines), 1)))
			}
			return s.print(map[string]string{"ok": what}, "OK\n")
		},
	}
}

func userCommand() *cli.Command {
	verbs := []authVerb{
		{"add", "add a user (the password comes from --new-password-file or stdin)", "NAME", line.CmdUserAdd, true},
		{"del", "delete a user", "NAME", line.CmdUserDel, false},
		{"passwd", "change a user's password (an admin's, or your own)", "NAME", line.CmdUserPasswd, true},
		{"grant", "give a user a role (admin is built in)", "NAME ROLE", line.CmdUserGrant, false},
		{"revoke", "take a role from a user", "NAME ROLE", line.CmdUserRevoke, false},
		{"list", "list the users and their roles", "", line.CmdUserList, false},
	}
	cmd := &cli.Command{Name: "user", Usage: "manage users (proxies with --auth; as an admin, --user and --password-file)", OnUsageError: onUsageError}
	for _, v := range verbs {
		cmd.Subcommands = append(cmd.Subcommands, v.command("user"))
	}
	return cmd
}

func roleCommand() *cli.Command {
	verbs := []authVerb{
		{"add", "add a role, which grants nothing yet", "NAME", line.CmdRoleAdd, false},
		{"del", "delete a role", "NAME", line.CmdRoleDel, false},
		{"grant", "let a role read, write or readwrite the keys under PREFIX (* for every key)", "NAME PERM PREFIX", line.CmdRoleGrant, false},
		{"revoke", "take a permission on PREFIX from a role", "NAME PERM PREFIX", line.CmdRoleRevoke, false},
		{"list", "list the roles and their permissions", "", line.CmdRoleList, false},
	}
	cmd := &cli.Command{Name: "role", Usage: "manage roles: read and write permissions on key prefixes", OnUsageError: onUsageError}
	for _, v := range verbs {
		cmd.Subcommands = append(cmd.Subcommands, v.command("role"))
	}
	return cmd
}

// proxyAuthFlags are `synod proxy`'s users flags.
func proxyAuthFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "auth", Usage: "require AUTH: users and permissions from the replicated state (synod user, synod role)", EnvVars: env("auth")},
		&cli.StringFlag{Name: "bootstrap-admin", Usage: "create this admin user if it does not exist (the first admin of a cluster)", EnvVars: env("bootstrap-admin")},
		&cli.StringFlag{Name: "bootstrap-password-file", Usage: "file whose first line is --bootstrap-admin's password", EnvVars: env("bootstrap-password-file")},
	}
}

// applyProxyAuth reads the users flags into cfg.
func applyProxyAuth(c *cli.Context, cfg *proxy.Config) error {
	cfg.Auth = c.Bool("auth")
	admin, file := c.String("bootstrap-admin"), c.String("bootstrap-password-file")
	if (admin == "") != (file == "") {
		return usageError("--bootstrap-admin and --bootstrap-password-file go together")
	}
	if admin == "" {
		return nil
	}
	if !line.ValidName(admin) {
		return usageError("--bootstrap-admin %q: want 1 to %d letters, digits, . _ @ -", admin, line.MaxNameLen)
	}
	pw, err := readPassword(file, c.App.Reader)
	if err != nil {
		return err
	}
	cfg.BootstrapAdmin, cfg.BootstrapPassword = admin, pw
	return nil
}
