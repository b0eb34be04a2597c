package main

// This file owns `synod node`: its flags, the --peers list (shared with
// restore), and running one replica until a signal stops it. The command's
// goroutine builds the node.Config and calls node.New and Run; the node's
// own goroutines are package node's.

import (
	"fmt"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"synod/node"
)

// parsePeers reads "1=127.0.0.1:7101,2=…" into a map.
func parsePeers(s string) (map[uint64]string, error) {
	peers := map[uint64]string{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		id, addr, ok := strings.Cut(part, "=")
		n, err := strconv.ParseUint(id, 10, 64)
		if !ok || err != nil || n == 0 || addr == "" {
			return nil, fmt.Errorf("bad peer %q: want id=host:port", part)
		}
		if _, dup := peers[n]; dup {
			return nil, fmt.Errorf("peer %d listed twice", n)
		}
		peers[n] = addr
	}
	if len(peers) == 0 {
		return nil, fmt.Errorf("no peers")
	}
	return peers, nil
}

func init() { commandMakers = append(commandMakers, nodeCommand) }

func nodeCommand() *cli.Command {
	def := node.DefaultConfig()
	return &cli.Command{
		Name:  "node",
		Usage: "run one replica",
		Flags: append([]cli.Flag{
			&cli.Uint64Flag{Name: "id", Required: true, Usage: "this replica's id", EnvVars: env("id")},
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:7101", Usage: "address for peers and proxies", EnvVars: env("listen")},
			&cli.StringFlag{Name: "peers", Usage: "every replica of a new cluster: 1=host:port,2=host:port,…", EnvVars: env("peers")},
			&cli.StringFlag{Name: "join", Usage: "instead of --peers: the address of any live member of a running cluster, which already lists this replica (synod member add)", EnvVars: env("join")},
			&cli.BoolFlag{Name: "auto-promote", Value: true, Usage: "as master, promote a learner to voter once it has caught up", EnvVars: env("auto-promote")},
			&cli.StringFlag{Name: "dir", Required: true, Usage: "data directory", EnvVars: env("dir")},
			&cli.StringFlag{Name: "cluster", Value: def.ClusterID, Usage: "cluster id, equal on every replica and proxy", EnvVars: env("cluster")},
			&cli.BoolFlag{Name: "repair", Usage: "start after log corruption by cutting the log there (rejoins as a learner)", EnvVars: env("repair")},
			&cli.DurationFlag{Name: "tick", Value: def.TickInterval, Usage: "the consensus core's clock tick", EnvVars: env("tick")},
			&cli.DurationFlag{Name: "heartbeat", Value: def.Heartbeat, Usage: "master heartbeat interval", EnvVars: env("heartbeat")},
			&cli.DurationFlag{Name: "election-timeout", Value: def.ElectionTimeout, Usage: "minimum election timeout (randomized up to twice this)", EnvVars: env("election-timeout")},
			&cli.DurationFlag{Name: "lease", Value: def.Lease, Usage: "master lease for reads without a quorum round (0 = off; default 4/5 of the election timeout, at most what the 5% clock-drift margin allows)", EnvVars: env("lease")},
			&cli.IntFlag{Name: "max-value", Value: def.MaxValue, Usage: "largest file in bytes", EnvVars: env("max-value")},
			&cli.DurationFlag{Name: "read-timeout", Value: def.ReadTimeout, Usage: "how long a read may wait to reach its index", EnvVars: env("read-timeout")},
			&cli.Uint64Flag{Name: "snapshot-every", Value: def.SnapshotEvery, Usage: "applied commands between snapshots", EnvVars: env("snapshot-every")},
			&cli.Uint64Flag{Name: "snapshot-window", Value: def.SnapshotWindow, Usage: "log slots kept behind a snapshot for catch-up", EnvVars: env("snapshot-window")},
			&cli.Int64Flag{Name: "segment-bytes", Value: def.SegmentBytes, Usage: "log segment size; compaction deletes whole segments", EnvVars: env("segment-bytes")},
			&cli.IntFlag{Name: "snapshot-chunk", Value: def.SnapshotChunk, Usage: "bytes per piece of a snapshot transfer", EnvVars: env("snapshot-chunk")},
			&cli.IntFlag{Name: "watch-history", Value: def.WatchHistory, Usage: "changes kept in memory for watches; a watch from an older index is refused COMPACTED", EnvVars: env("watch-history")},
			&cli.Int64Flag{Name: "watch-history-bytes", Value: def.WatchHistoryBytes, Usage: "bytes of the changes kept for watches (keys, values and previous values)", EnvVars: env("watch-history-bytes")},
			&cli.DurationFlag{Name: "chunk-gc-grace", Value: def.ChunkGCGrace, Usage: "a large file's chunk that no file, kept snapshot, log entry or backup refers to is removed once it was stored and unreferenced this long (longer than any upload or backup takes)", EnvVars: env("chunk-gc-grace")},
			&cli.DurationFlag{Name: "chunk-gc-interval", Value: def.ChunkGCInterval, Usage: "how often unreferenced chunks are looked for", EnvVars: env("chunk-gc-interval")},
		}, append(append(tlsServerFlags(), metricsFlags()...), testHookFlags()...)...),
		Action: func(c *cli.Context) error {
			lg, err := newLogger(c)
			if err != nil {
				return err
			}
			var peers map[uint64]string
			switch {
			case c.String("peers") != "":
				if peers, err = parsePeers(c.String("peers")); err != nil {
					return usageError("--peers: %v", err)
				}
			case c.String("join") == "":
				return usageError("--peers or --join is required")
			}
			cfg := node.DefaultConfig()
			cfg.ID = c.Uint64("id")
			cfg.ClusterID = c.String("cluster")
			cfg.Listen = c.String("listen")
			cfg.Peers = peers
			cfg.Join = c.String("join")
			cfg.AutoPromote = c.Bool("auto-promote")
			cfg.Dir = c.String("dir")
			cfg.Repair = c.Bool("repair")
			cfg.TickInterval = c.Duration("tick")
			cfg.Heartbeat = c.Duration("heartbeat")
			cfg.ElectionTimeout = c.Duration("election-timeout")
			cfg.Lease = c.Duration("lease")
			if !c.IsSet("lease") {
				// The default keeps the design's ratio (400 ms of 500 ms) when
				// only the election timeout is changed, within the drift margin.
				cfg.Lease = min(cfg.ElectionTimeout*4/5, cfg.MaxLease())
			}
			cfg.MaxValue = c.Int("max-value")
			cfg.ReadTimeout = c.Duration("read-timeout")
			cfg.SnapshotEvery = c.Uint64("snapshot-every")
			cfg.SnapshotWindow = c.Uint64("snapshot-window")
			cfg.SnapshotChunk = c.Int("snapshot-chunk")
			cfg.WatchHistory = c.Int("watch-history")
			cfg.WatchHistoryBytes = c.Int64("watch-history-bytes")
			cfg.ChunkGCGrace = c.Duration("chunk-gc-grace")
			cfg.ChunkGCInterval = c.Duration("chunk-gc-interval")
			cfg.SegmentBytes = c.Int64("segment-bytes")
			applyTestHooks(c, &cfg)
			if cfg.TLS, err = loadServerBundle(c); err != nil {
				return err
			}
			cfg.Logger = lg
			// SIGINT and SIGTERM stop the replica from here on: one that
			// comes while it joins or replays its log ends the start-up
			// cleanly instead of killing the process.
			ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			n, err := node.NewContext(ctx, cfg)
			if err != nil {
				if ctx.Err() != nil {
					lg.Info().Err(err).Msg("replica stopped during start-up")
					return nil
				}
				return err
			}
			stopMetrics, err := startMetrics(c, lg, n.Registry(), n.Ready)
			if err != nil {
				return err
			}
			defer stopMetrics()
			reloadOnSIGHUP(ctx, cfg.TLS, lg)
			lg.Info().Uint64("id", cfg.ID).Str("addr", n.Addr().String()).Str("dir", cfg.Dir).Msg("replica serving")
			if err := n.Run(ctx); err != nil {
				return err
			}
			lg.Info().Msg("replica stopped")
			return nil
		},
	}
}
