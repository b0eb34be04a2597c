package main

// This file owns `synod bench`: synod as a benchcli.System, reached through
// a proxy or straight to the master, or a cluster of its own spawned per
// run (bench/spawn). The command's goroutine runs it; bench.Run starts the
// clients' goroutines, and --scrape-metrics a scraper goroutine.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"synod/bench"
	"synod/bench/benchcli"
	"synod/bench/profile"
	"synod/bench/spawn"
	"synod/bench/target"
	"synod/node"
)

func init() {
	commandMakers = append(commandMakers, benchCommand)
	// A replica or proxy started by `bench --spawn --cpuprofile DIR` is
	// profiled over the measured window on the bench's signal.
	profile.ListenFromEnv()
}

// synodBench is synod as a benchcli.System: through the proxy with the line
// protocol, or with --direct straight to the master over wire.
func synodBench() benchcli.System {
	return benchcli.System{
		Name:        "synod",
		DefaultAddr: "127.0.0.1:7000",
		AddrUsage:   "the proxy's address; with --direct, replica addresses a,b,c (any of them; the bench finds the master). Ignored with --spawn",
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "direct", Usage: "talk to the master over the wire protocol, without a proxy", EnvVars: env("bench-direct")},
			&cli.StringFlag{Name: "cluster", Value: node.DefaultConfig().ClusterID, Usage: "with --direct: the cluster id", EnvVars: env("bench-cluster")},
			&cli.BoolFlag{Name: "secure", Usage: "with --spawn: TLS on every link, as synod up --secure makes it (certificates of the run's own; users stay off)", EnvVars: env("bench-secure")},
			&cli.DurationFlag{Name: "scrape-metrics", Usage: "with --spawn: every process serves its metrics endpoint, and the bench scrapes each this often, as Prometheus would (the cost of observability)", EnvVars: env("bench-scrape-metrics")},
			&cli.Int64Flag{Name: "putfile-above", Value: target.DefaultPutFileAbove, Usage: "with --file-size: a file larger than this many bytes goes up with PUTFILE (chunked) and comes back with GET RANGE, one no larger with PUT and GET, as synod cp does with --chunked-above; 0: every file with PUTFILE. Not with --direct, which takes files as values", EnvVars: env("bench-putfile-above")},
			&cli.StringFlag{Name: "cpuprofile", Usage: "with --spawn: write a CPU profile of every replica and the proxy over the measured window to DIR/<name>.pprof", EnvVars: env("bench-cpuprofile")},
		}, append(tlsClientFlags(), authFlags()...)...),
		Spawn: func(ctx context.Context, c *cli.Context, n int, w bench.Workload) (*benchcli.Spawned, error) {
			exe, err := os.Executable()
			if err != nil {
				return nil, fmt.Errorf("bench: find the synod binary: %w", err)
			}
			direct := c.Bool("direct")
			profDir := c.String("cpuprofile")
			if profDir != "" {
				if err := os.MkdirAll(profDir, 0o755); err != nil {
					return nil, fmt.Errorf("bench: --cpuprofile: %w", err)
				}
			}
			secure := c.Bool("secure")
			if secure && direct {
				return nil, usageError("--secure measures TLS through the proxy; it does not go with --direct")
			}
			scrape := c.Duration("scrape-metrics")
			if scrape < 0 {
				return nil, usageError("--scrape-metrics %v: want a positive interval", scrape)
			}
			cl, err := spawn.Start(ctx, spawn.Options{Exe: exe, Nodes: n, Proxy: !direct, Keep: c.Bool("keep"), ProfileDir: profDir, TLS: secure, Metrics: scrape > 0})
			if err != nil {
				return nil, err
			}
			sp := &benchcli.Spawned{Cluster: cl, Close: cl.Close}
			if scrape > 0 {
				stop := scrapeMetrics(cl.MetricsURLs(), scrape)
				sp.Close = func() error { stop(); return cl.Close() }
			}
			if direct {
				sp.Where = fmt.Sprintf("%d replicas in %s", n, cl.Dir())
				sp.Via = "direct to the master"
				sp.Target, err = target.NewDirect(cl.NodeAddrs(), cl.ClusterID(), w.Consistency)
			} else {
				sp.Where = fmt.Sprintf("%d replicas and a proxy in %s", n, cl.Dir())
				sp.Via = "proxy"
				var t *target.Line
				if t, err = target.NewLine(cl.ProxyAddr(), w.Consistency); err == nil {
					t.TLS = cl.ClientTLS()
					t.PutFileAbove = putFileAbove(c)
					sp.Target = t
				}
				if secure {
					sp.Via = "proxy, TLS on every link"
				}
				if scrape > 0 {
					sp.Via += fmt.Sprintf(", metrics scraped every %v", scrape)
				}
			}
			if err != nil {
				cl.Close()
				return nil, usageError("%v", err)
			}
			return sp, nil
		},
		Connect: func(ctx context.Context, c *cli.Context, addr string, w bench.Workload) (bench.Target, string, error) {
			if c.Bool("direct") {
				addrs := strings.Split(addr, ",")
				t, err := target.NewDirect(addrs, c.String("cluster"), w.Consistency)
				if err != nil {
					return nil, "", usageError("%v", err)
				}
				return t, "direct to the master of " + addr, nil
			}
			t, err := target.NewLine(addr, w.Consistency)
			if err != nil {
				return nil, "", usageError("%v", err)
			}
			if t.TLS, err = clientTLS(c); err != nil {
				return nil, "", err
			}
			t.PutFileAbove = putFileAbove(c)
			if t.User, t.Password, err = credentials(c); err != nil {
				return nil, "", err
			}
			via := "proxy " + addr
			if t.TLS != nil {
				via += " over TLS"
			}
			return t, via, nil
		},
	}
}

// putFileAbove is --putfile-above as target.Line takes it (negative:
// every file with PUTFILE).
func putFileAbove(c *cli.Context) int64 {
	if n := c.Int64("putfile-above"); n > 0 {
		return n
	}
	return -1
}

func benchCommand() *cli.Command {
	sys := synodBench()
	action := benchcli.Action(sys)
	return &cli.Command{
		Name:  "bench",
		Usage: "measure throughput, latency and failover with closed-loop clients",
		Description: "Runs --clients closed-loop clients for --duration against the proxy at --addr\n" +
			"(or, with --direct, the master), or against a fresh cluster with --spawn N.\n" +
			"Prints p50/p90/p99/p99.9/max latency and ops/s; --json and --timeline save\n" +
			"every figure and a plot. With --spawn, --kill-master-at D SIGKILLs the master\n" +
			"D into the measured window and reports how long writes stopped. With\n" +
			"--file-size N every write is a file of N bytes (PUTFILE above --putfile-above)\n" +
			"and every read reads a whole file (GET RANGE), reported in MB/s and server\n" +
			"CPU ns/byte as well.",
		Flags: benchcli.Flags(sys),
		Action: func(c *cli.Context) error {
			err := action(c)
			if errors.Is(err, benchcli.ErrUsage) || errors.Is(err, bench.ErrWorkload) {
				return usageError("%v", err)
			}
			return err
		},
	}
}

// scrapeMetrics fetches every url each interval on a goroutine of its own,
// reading each reply whole, until the returned stop is called.
func scrapeMetrics(urls []string, interval time.Duration) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	hc := &http.Client{Timeout: interval}
	go func() {
		defer close(finished)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			for _, u := range urls {
				if resp, err := hc.Get(u); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); <-finished }
}
