//go:build synodtest

package main

// This file owns the node's test hooks (fault injection, planted bugs) on
// the command line. It is compiled only into a test build of the binary
// (go build -tags synodtest, as internal/cluster builds it): a production
// binary has no way to switch one on, neither flag nor environment
// variable, and the flags are hidden from --help even here. A node with a
// hook on says so loudly when it starts (node.New). The flags are read on
// `synod node`'s command goroutine, before node.New.

import (
	"github.com/urfave/cli/v2"

	"synod/node"
)

// testHookFlags are the hidden flags of the test build; none reads the
// environment.
func testHookFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "test-unsafe-follower-reads", Hidden: true, Usage: "planted bug: followers answer linearizable reads without a read index"},
		&cli.DurationFlag{Name: "test-fsync-delay", Hidden: true, Usage: "a slow disk: sleep this long between a log write and its fsync"},
		&cli.BoolFlag{Name: "test-cut-snapshot-once", Hidden: true, Usage: "break the first snapshot transfer served after one chunk"},
		&cli.DurationFlag{Name: "test-read-delay", Hidden: true, Usage: "delay every read answer"},
		&cli.Float64Flag{Name: "test-clock-rate", Hidden: true, Usage: "run the node's clock at this rate of real time (1.05 = 5% fast)"},
		&cli.BoolFlag{Name: "test-lossy-fsync", Hidden: true, Usage: "keep log writes in memory until their fsync, so kill -9 loses them"},
		&cli.BoolFlag{Name: "test-ack-before-fsync", Hidden: true, Usage: "planted bug: send votes before their batch is fsynced"},
		&cli.BoolFlag{Name: "test-drop-chunk-puts", Hidden: true, Usage: "acknowledge every chunk a proxy puts, and keep none (a disk losing chunk files)"},
		&cli.DurationFlag{Name: "test-fetch-delay", Hidden: true, Usage: "the chunk fetcher waits this long before each file it checks"},
	}
}

// applyTestHooks copies the hooks set on the command line into cfg.
func applyTestHooks(c *cli.Context, cfg *node.Config) {
	cfg.UnsafeFollowerReads = c.Bool("test-unsafe-follower-reads")
	cfg.FsyncDelay = c.Duration("test-fsync-delay")
	cfg.TestCutSnapshotOnce = c.Bool("test-cut-snapshot-once")
	cfg.ReadDelay = c.Duration("test-read-delay")
	cfg.TestClockRate = c.Float64("test-clock-rate")
	cfg.TestLossyFsync = c.Bool("test-lossy-fsync")
	cfg.TestAckBeforeFsync = c.Bool("test-ack-before-fsync")
	cfg.TestDropChunkPuts = c.Bool("test-drop-chunk-puts")
	cfg.TestFetchDelay = c.Duration("test-fetch-delay")
}
