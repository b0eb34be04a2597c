package main

// This file owns the TLS flags of every verb: --cacert, --cert and --key
// for `synod node` and `synod proxy` (mutual TLS with the cluster's CA),
// the same plus --tls for the client verbs; loading them (a malformed file
// stops the command, naming it), and reloading a server's bundle on
// SIGHUP, on a goroutine of its own that ends with the command's context.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"synod/wire/tlsconf"
)

// tlsServerFlags are the TLS flags of `synod node` and `synod proxy`.
func tlsServerFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "cacert", Usage: "the cluster CA's certificate (PEM); with --cert and --key turns on mutual TLS (reloaded on SIGHUP)", EnvVars: env("cacert")},
		&cli.StringFlag{Name: "cert", Usage: "this process's certificate (PEM), issued by the CA (synod certs)", EnvVars: env("cert")},
		&cli.StringFlag{Name: "key", Usage: "the certificate's private key (PEM)", EnvVars: env("key")},
	}
}

// tlsClientFlags are the TLS flags of the client verbs.
func tlsClientFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "tls", Usage: "speak TLS to the proxy (implied by --cacert)", EnvVars: env("tls")},
		&cli.StringFlag{Name: "cacert", Usage: "the CA that signed the proxy's certificate (PEM); default the system's", EnvVars: env("cacert")},
		&cli.StringFlag{Name: "cert", Usage: "a client certificate (PEM) to present, if the proxy asks for one", EnvVars: env("cert")},
		&cli.StringFlag{Name: "key", Usage: "the client certificate's private key (PEM)", EnvVars: env("key")},
	}
}

// loadServerBundle reads a server's --cacert, --cert and --key: nil when
// none is set, an error naming the file when one is malformed, a usage
// error when only some are set.
func loadServerBundle(c *cli.Context) (*tlsconf.Bundle, error) {
	files := tlsconf.Files{CA: c.String("cacert"), Cert: c.String("cert"), Key: c.String("key")}
	if files == (tlsconf.Files{}) {
		return nil, nil
	}
	if files.CA == "" || files.Cert == "" || files.Key == "" {
		return nil, usageError("--cacert, --cert and --key go together")
	}
	b, err := tlsconf.Load(files)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// reloadOnSIGHUP reloads b on every SIGHUP until ctx ends. A reload that
// fails keeps the certificates in use and says why.
func reloadOnSIGHUP(ctx context.Context, b *tlsconf.Bundle, lg zerolog.Logger) {
	if b == nil {
		return
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
			}
			if err := b.Reload(); err != nil {
				lg.Error().Err(err).Msg("SIGHUP: certificates not reloaded; the ones in use stay")
				continue
			}
			leaf := b.Leaf()
			lg.Info().Str("cert", leaf.Subject.CommonName).Time("not_after", leaf.NotAfter).Msg("SIGHUP: certificates reloaded")
		}
	}()
}

// clientTLS reads a client verb's TLS flags: nil for plaintext.
func clientTLS(c *cli.Context) (*tls.Config, error) {
	ca, cert, key := c.String("cacert"), c.String("cert"), c.String("key")
	if !c.Bool("tls") && ca == "" && cert == "" && key == "" {
		return nil, nil
	}
	if (cert == "") != (key == "") {
		return nil, usageError("--cert and --key go together")
	}
	if ca != "" && cert != "" {
		b, err := tlsconf.Load(tlsconf.Files{CA: ca, Cert: cert, Key: key})
		if err != nil {
			return nil, err
		}
		return b.ClientConfig(), nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS13}
	if ca != "" {
		data, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("--cacert: %w", err)
		}
		certs, err := tlsconf.ParseCertificates(data)
		if err != nil {
			return nil, fmt.Errorf("--cacert %s: %w", ca, err)
		}
		cfg.RootCAs = x509.NewCertPool()
		for _, c := range certs {
			cfg.RootCAs.AddCert(c)
		}
	}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("--cert %s / --key %s: %w", cert, key, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}
