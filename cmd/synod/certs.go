package main

// This file owns `synod certs ca|node|proxy|client`: making a cluster's CA
// and the certificates it signs into one directory (ca.crt, ca.key,
// NAME.crt, NAME.key), in the manner of cockroach's `cert` or mkcert. It
// runs on the command's goroutine and never replaces a file unless told to.
// Flags may follow NAME (interspersed.go).

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"synod/wire/tlsconf"
)

func init() { commandMakers = append(commandMakers, certsCommand) }

// Default validity of what `synod certs` makes.
const (
	caValidity   = 10 * 365 * 24 * time.Hour
	leafValidity = 365 * 24 * time.Hour
)

func certsCommand() *cli.Command {
	common := func(leafDefault time.Duration) []cli.Flag {
		return []cli.Flag{
			&cli.StringFlag{Name: "dir", Value: "certs", Usage: "directory of the CA and the certificates", EnvVars: env("certs-dir")},
			&cli.DurationFlag{Name: "valid-for", Value: leafDefault, Usage: "how long the certificate is valid from now"},
			&cli.StringFlag{Name: "not-after", Usage: "instead of --valid-for: the end of validity (RFC 3339), past ones included, to rehearse an expiry"},
			&cli.BoolFlag{Name: "overwrite", Usage: "replace files that exist (rotation: then SIGHUP the processes)"},
		}
	}
	leaf := func(kind, usage string) *cli.Command {
		flags := common(leafValidity)
		if kind != "client" {
			flags = append(flags, &cli.StringFlag{Name: "hosts", Usage: "comma-separated DNS names and IP addresses it serves, besides 127.0.0.1, ::1 and localhost"})
		}
		return &cli.Command{
			Name: kind, Usage: usage, ArgsUsage: "NAME", Flags: flags, OnUsageError: onUsageError,
			Action: withLateFlags(nil, func(c *cli.Context, args []string) error { return runCertsLeaf(c, kind, args) }),
		}
	}
	return &cli.Command{
		Name:  "certs",
		Usage: "make a cluster CA and the certificates of its replicas, proxies and clients",
		Description: "synod certs ca makes DIR/ca.crt and DIR/ca.key; synod certs node|proxy|client NAME makes\n" +
			"DIR/NAME.crt and DIR/NAME.key signed by it (ECDSA P-256). Give replicas and proxies\n" +
			"--cacert DIR/ca.crt --cert DIR/NAME.crt --key DIR/NAME.key. Keep ca.key off the servers.",
		Subcommands: []*cli.Command{
			{
				Name: "ca", Usage: "make the CA", Flags: append(common(caValidity), &cli.StringFlag{Name: "name", Value: "synod CA", Usage: "the CA's common name"}),
				OnUsageError: onUsageError,
				Action: func(c *cli.Context) error {
					if c.NArg() != 0 {
						return usageError("certs ca takes no arguments")
					}
					v, err := certsValidity(c)
					if err != nil {
						return err
					}
					ca, err := tlsconf.NewCA(c.String("name"), v)
					if err != nil {
						return err
					}
					cert, key, err := ca.WriteFiles(c.String("dir"), "ca", c.Bool("overwrite"))
					if err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "CA %q valid until %s: %s (keep %s secret)\n", c.String("name"), ca.Cert.NotAfter.UTC().Format(time.RFC3339), cert, key)
					return nil
				},
			},
			leaf("node", "make a replica's certificate"),
			leaf("proxy", "make a proxy's certificate"),
			leaf("client", "make a line-protocol client's certificate"),
		},
	}
}

func certsValidity(c *cli.Context) (tlsconf.Validity, error) {
	v := tlsconf.Validity{For: c.Duration("valid-for")}
	if s := c.String("not-after"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return v, usageError("--not-after %q: want an RFC 3339 time such as 2030-01-02T15:04:05Z", s)
		}
		v.NotAfter = t
	} else if v.For <= 0 {
		return v, usageError("--valid-for %v: want a positive duration", v.For)
	}
	return v, nil
}

// certName checks a certificate's NAME: it becomes file names.
func certName(name string) error {
	if name == "" || name == "ca" || strings.ContainsAny(name, "/\\ \t\r\n") || strings.HasPrefix(name, ".") {
		return fmt.Errorf("certificate name %q: want a word without spaces or slashes, not \"ca\"", name)
	}
	return nil
}

func runCertsLeaf(c *cli.Context, kind string, args []string) error {
	if len(args) != 1 {
		return usageError("certs %s takes NAME, got %d argument(s)", kind, len(args))
	}
	name := args[0]
	if err := certName(name); err != nil {
		return usageError("%v", err)
	}
	k, err := tlsconf.ParseKind(kind)
	if err != nil {
		return usageError("%v", err)
	}
	dir := c.String("dir")
	ca, err := tlsconf.LoadCA(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key"))
	if err != nil {
		return fmt.Errorf("%w (make one with synod certs ca --dir %s)", err, dir)
	}
	var hosts []string
	for _, h := range strings.Split(c.String("hosts"), ",") {
		if h = strings.TrimSpace(h); h != "" {
			hosts = append(hosts, h)
		}
	}
	v, err := certsValidity(c)
	if err != nil {
		return err
	}
	is, err := ca.Issue(k, name, hosts, v)
	if err != nil {
		return err
	}
	cert, key, err := is.WriteFiles(dir, name, c.Bool("overwrite"))
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "%s certificate %q valid until %s: %s %s\n", kind, name, is.Cert.NotAfter.UTC().Format(time.RFC3339), cert, key)
	return nil
}
