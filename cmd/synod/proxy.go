package main

// This file owns `synod proxy`: its flags, the --nodes list (id=addr
// entries and bare seed addresses), and running the proxy until a signal
// stops it, on the command's goroutine.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"synod/proxy"
)

func init() { commandMakers = append(commandMakers, proxyCommand) }

// proxyDrainTimeout bounds how long a stopping proxy waits for the replies
// to requests it already read.
const proxyDrainTimeout = 15 * time.Second

func proxyCommand() *cli.Command {
	def := proxy.DefaultConfig()
	return &cli.Command{
		Name:  "proxy",
		Usage: "serve the line protocol to clients: writes to the master, reads spread over the followers",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "listen", Value: def.Listen, Usage: "address for clients", EnvVars: env("listen")},
			&cli.StringFlag{Name: "nodes", Required: true, Usage: "replicas to start from: id=host:port entries, or bare host:port addresses whose id the proxy asks; one reachable replica is enough, the proxy learns every member from it", EnvVars: env("nodes")},
			&cli.StringFlag{Name: "cluster", Value: def.ClusterID, Usage: "cluster id, equal on every replica and proxy", EnvVars: env("cluster")},
			&cli.DurationFlag{Name: "poll", Value: def.Poll, Usage: "how often every replica's status is asked", EnvVars: env("poll")},
			&cli.IntFlag{Name: "queue", Value: def.QueueSize, Usage: "requests held while there is no master; more are refused UNAVAILABLE", EnvVars: env("queue")},
			&cli.DurationFlag{Name: "hold", Value: def.Hold, Usage: "how long a request may wait for a master", EnvVars: env("hold")},
			&cli.IntFlag{Name: "max-conns", Value: def.MaxConns, Usage: "client connections served at once", EnvVars: env("max-conns")},
			&cli.DurationFlag{Name: "idle-timeout", Value: def.IdleTimeout, Usage: "close a client connection that sends no request for this long", EnvVars: env("idle-timeout")},
			&cli.IntFlag{Name: "max-value", Value: def.MaxValue, Usage: "largest value a client may send, in bytes", EnvVars: env("max-value")},
			&cli.Int64Flag{Name: "max-file-size", Value: def.MaxFileSize, Usage: "largest file a client may upload with PUTFILE (synod cp of a file over --max-value), in bytes; a larger upload is refused TOO_LARGE", EnvVars: env("max-file-size")},
			&cli.IntFlag{Name: "max-client-uploads", Value: def.MaxUploads, Usage: "PUTFILE uploads one client (its AUTH user, or else its IP address) may have in progress at once, over all its connections; one more is refused BUSY", EnvVars: env("max-client-uploads")},
			&cli.Int64Flag{Name: "max-client-upload-bytes", Value: def.MaxUploadBytes, Usage: "bytes one client's uploads in progress may declare together; an upload that would pass it is refused BUSY, one larger than it alone TOO_LARGE", EnvVars: env("max-client-upload-bytes")},
			&cli.IntFlag{Name: "chunk-size", Value: def.ChunkSize, Usage: "bytes per chunk of an uploaded file, each stored on a majority of replicas before the file's write", EnvVars: env("chunk-size")},
			&cli.Int64Flag{Name: "queue-bytes", Value: def.QueueBytes, Usage: "bytes of requests held while there is no master; more are refused UNAVAILABLE", EnvVars: env("queue-bytes")},
			&cli.IntFlag{Name: "max-inflight", Value: def.MaxInflight, Usage: "requests of all clients on their way to replicas; more are refused BUSY", EnvVars: env("max-inflight")},
			&cli.Int64Flag{Name: "max-inflight-bytes", Value: def.MaxInflightBytes, Usage: "bytes of requests and unwritten replies of all clients; a value that does not fit is refused BUSY", EnvVars: env("max-inflight-bytes")},
			&cli.IntFlag{Name: "max-pipeline", Value: def.MaxPipeline, Usage: "unanswered requests per connection before it is read no further", EnvVars: env("max-pipeline")},
			&cli.Int64Flag{Name: "max-pipeline-bytes", Value: def.MaxPipelineBytes, Usage: "bytes of requests and unwritten replies per connection before it is read no further (a read counts as a --max-value reply)", EnvVars: env("max-pipeline-bytes")},
			&cli.IntFlag{Name: "max-watches", Value: def.MaxWatches, Usage: "watches open on one connection; one more is refused BUSY", EnvVars: env("max-watches")},
			&cli.IntFlag{Name: "max-watches-total", Value: def.MaxWatchesTotal, Usage: "watches open on all connections; one more is refused BUSY", EnvVars: env("max-watches-total")},
			&cli.IntFlag{Name: "watch-buffer", Value: def.WatchBuffer, Usage: "bytes of events one watch holds for a client that does not read them", EnvVars: env("watch-buffer")},
			&cli.DurationFlag{Name: "watch-stall", Value: def.WatchStall, Usage: "how long a watch's buffer may stay full before the watch is cut (CANCELED ... SLOW)", EnvVars: env("watch-stall")},
			&cli.DurationFlag{Name: "watch-progress", Value: def.WatchProgress, Usage: "how often an idle watch gets a PROGRESS line (below the read timeout)", EnvVars: env("watch-progress")},
		}, append(append(tlsServerFlags(), proxyAuthFlags()...), metricsFlags()...)...),
		Action: func(c *cli.Context) error {
			lg, err := newLogger(c)
			if err != nil {
				return err
			}
			nodes, seeds, err := parseProxyNodes(c.String("nodes"))
			if err != nil {
				return usageError("--nodes: %v", err)
			}
			cfg := proxy.DefaultConfig()
			cfg.Listen = c.String("listen")
			cfg.Nodes = nodes
			cfg.Seeds = seeds
			cfg.ClusterID = c.String("cluster")
			cfg.Poll = c.Duration("poll")
			cfg.QueueSize = c.Int("queue")
			cfg.Hold = c.Duration("hold")
			cfg.MaxConns = c.Int("max-conns")
			cfg.IdleTimeout = c.Duration("idle-timeout")
			cfg.MaxValue = c.Int("max-value")
			cfg.MaxFileSize = c.Int64("max-file-size")
			cfg.MaxUploads = c.Int("max-client-uploads")
			cfg.MaxUploadBytes = c.Int64("max-client-upload-bytes")
			cfg.ChunkSize = c.Int("chunk-size")
			cfg.QueueBytes = c.Int64("queue-bytes")
			cfg.MaxInflight = c.Int("max-inflight")
			cfg.MaxInflightBytes = c.Int64("max-inflight-bytes")
			cfg.MaxPipeline = c.Int("max-pipeline")
			cfg.MaxPipelineBytes = c.Int64("max-pipeline-bytes")
			cfg.MaxWatches = c.Int("max-watches")
			cfg.MaxWatchesTotal = c.Int("max-watches-total")
			cfg.WatchBuffer = c.Int("watch-buffer")
			cfg.WatchStall = c.Duration("watch-stall")
			cfg.WatchProgress = c.Duration("watch-progress")
			// Byte bounds left at their defaults grow with a larger
			// --max-value, so each holds as many largest values as it
			// does at the default.
			if scale := int64(cfg.MaxValue) / int64(def.MaxValue); scale > 1 {
				for _, b := range []struct {
					flag string
					v    *int64
				}{{"queue-bytes", &cfg.QueueBytes}, {"max-inflight-bytes", &cfg.MaxInflightBytes}, {"max-pipeline-bytes", &cfg.MaxPipelineBytes}} {
					if !c.IsSet(b.flag) {
						*b.v *= scale + 1
					}
				}
			}
			if cfg.TLS, err = loadServerBundle(c); err != nil {
				return err
			}
			if err := applyProxyAuth(c, &cfg); err != nil {
				return err
			}
			cfg.Logger = lg
			if err := cfg.Validate(); err != nil {
				return usageError("%v", err)
			}
			ln, err := net.Listen("tcp", cfg.Listen)
			if err != nil {
				return err
			}
			srv, err := proxy.New(cfg)
			if err != nil {
				ln.Close()
				return err
			}
			stopMetrics, err := startMetrics(c, lg, srv.Registry(), srv.Ready)
			if err != nil {
				srv.Close()
				ln.Close()
				return err
			}
			defer stopMetrics()
			ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			reloadOnSIGHUP(ctx, cfg.TLS, lg)
			served := make(chan error, 1)
			go func() { served <- srv.Serve(ln) }()
			lg.Info().Str("addr", ln.Addr().String()).Int("replicas", len(nodes)).Int("seeds", len(seeds)).Bool("tls", cfg.TLS != nil).Msg("proxy serving")
			select {
			case err := <-served:
				srv.Close()
				return err
			case <-ctx.Done():
			}
			lg.Info().Msg("proxy stopping")
			sctx, cancel := context.WithTimeout(context.Background(), proxyDrainTimeout)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil {
				lg.Warn().Err(err).Msg("proxy stopped before every reply was written")
			}
			if err := <-served; !errors.Is(err, proxy.ErrServerClosed) {
				return err
			}
			lg.Info().Msg("proxy stopped")
			return nil
		},
	}
}

// parseProxyNodes reads `synod proxy --nodes`: comma-separated entries,
// each id=host:port (a replica the proxy knows by its id) or a bare
// host:port (a seed, whose id the proxy learns from its STATUS). An id or
// an address given twice is an error.
func parseProxyNodes(s string) (map[uint64]string, []string, error) {
	nodes := map[uint64]string{}
	var seeds []string
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		addr := part
		id, rest, hasID := strings.Cut(part, "=")
		if hasID {
			n, err := strconv.ParseUint(id, 10, 64)
			if err != nil || n == 0 {
				return nil, nil, fmt.Errorf("bad entry %q: want id=host:port or host:port, with an id from 1", part)
			}
			if _, dup := nodes[n]; dup {
				return nil, nil, fmt.Errorf("replica %d listed twice", n)
			}
			addr = rest
			nodes[n] = addr
		}
		if host, port, err := net.SplitHostPort(addr); err != nil || host == "" || port == "" {
			return nil, nil, fmt.Errorf("bad entry %q: want id=host:port or host:port", part)
		}
		if seen[addr] {
			return nil, nil, fmt.Errorf("address %s listed twice", addr)
		}
		seen[addr] = true
		if !hasID {
			seeds = append(seeds, addr)
		}
	}
	if len(nodes) == 0 && len(seeds) == 0 {
		return nil, nil, fmt.Errorf("no replicas")
	}
	return nodes, seeds, nil
}
