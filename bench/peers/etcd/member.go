package main

// This file owns `etcdbench member`: one etcd member run in this process
// with embed.NewConfig's defaults, until SIGTERM or SIGINT. The command's
// goroutine waits for it; etcd runs goroutines of its own.

import (
	"errors"
	"fmt"
	"net/url"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
)

// memberCommand runs one etcd member in this process: what --spawn starts
// once per member.
func memberCommand() *cli.Command {
	return &cli.Command{
		Name:   "member",
		Usage:  "run one etcd member (started by --spawn)",
		Hidden: true,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "name", Required: true},
			&cli.StringFlag{Name: "dir", Required: true},
			&cli.StringFlag{Name: "client-url", Required: true},
			&cli.StringFlag{Name: "peer-url", Required: true},
			&cli.StringFlag{Name: "initial-cluster", Required: true},
			&cli.StringFlag{Name: "token", Value: "etcdbench"},
			&cli.StringFlag{Name: "tls-ca", Usage: "with --tls-cert and --tls-key: mutual TLS on the client and peer URLs, this CA trusted"},
			&cli.StringFlag{Name: "tls-cert"},
			&cli.StringFlag{Name: "tls-key"},
		},
		Action: func(c *cli.Context) error {
			return runMember(c, memberFlags{Name: c.String("name"), Dir: c.String("dir"),
				ClientURL: c.String("client-url"), PeerURL: c.String("peer-url"),
				InitialCluster: c.String("initial-cluster"), Token: c.String("token"),
				TLSCA: c.String("tls-ca"), TLSCert: c.String("tls-cert"), TLSKey: c.String("tls-key")})
		},
	}
}

// memberFlags are what a member is told on its command line. TLSCA,
// TLSCert and TLSKey, all or none, turn on mutual TLS.
type memberFlags struct {
	Name, Dir, ClientURL, PeerURL, InitialCluster, Token string
	TLSCA, TLSCert, TLSKey                               string
}

// memberConfig is embed.NewConfig() with this member's names and addresses,
// and the etcd binary's slow-request warning threshold. Nothing else is
// changed: durability, timeouts, snapshots and logging are etcd's defaults.
// With TLS files, the client and the peer URLs are https and both sides
// of every link present a certificate from the CA (--client-cert-auth and
// --peer-client-cert-auth of the etcd binary).
func memberConfig(m memberFlags) (*embed.Config, error) {
	client, err := url.Parse(m.ClientURL)
	if err != nil {
		return nil, fmt.Errorf("--client-url: %w", err)
	}
	peer, err := url.Parse(m.PeerURL)
	if err != nil {
		return nil, fmt.Errorf("--peer-url: %w", err)
	}
	cfg := embed.NewConfig()
	cfg.Name = m.Name
	cfg.Dir = m.Dir
	cfg.ListenClientUrls = []url.URL{*client}
	cfg.AdvertiseClientUrls = []url.URL{*client}
	cfg.ListenPeerUrls = []url.URL{*peer}
	cfg.AdvertisePeerUrls = []url.URL{*peer}
	cfg.InitialCluster = m.InitialCluster
	cfg.InitialClusterToken = m.Token
	cfg.ClusterState = embed.ClusterStateFlagNew
	// The etcd binary defaults this to 300 ms (etcdmain falls back to
	// embed.DefaultWarningUnaryRequestDuration); NewConfig leaves it at 0,
	// which logs every request.
	cfg.WarningUnaryRequestDuration = embed.DefaultWarningUnaryRequestDuration
	switch n := btoi(m.TLSCA != "") + btoi(m.TLSCert != "") + btoi(m.TLSKey != ""); n {
	case 0:
	case 3:
		info := transport.TLSInfo{CertFile: m.TLSCert, KeyFile: m.TLSKey, TrustedCAFile: m.TLSCA, ClientCertAuth: true}
		cfg.ClientTLSInfo, cfg.PeerTLSInfo = info, info
	default:
		return nil, errors.New("--tls-ca, --tls-cert and --tls-key go together")
	}
	return cfg, nil
}

func runMember(c *cli.Context, m memberFlags) error {
	cfg, err := memberConfig(m)
	if err != nil {
		return err
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("member %s: %w", cfg.Name, err)
	}
	defer e.Close()
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		return fmt.Errorf("member %s: %w", cfg.Name, err)
	case <-ctx.Done():
		return nil
	case <-time.After(time.Minute):
		return fmt.Errorf("member %s: not ready after a minute", cfg.Name)
	}
	select {
	case err := <-e.Err():
		return fmt.Errorf("member %s: %w", cfg.Name, err)
	case <-ctx.Done():
		return nil
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
