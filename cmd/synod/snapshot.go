package main

// This file owns the `synod snapshot` command group and `synod snapshot
// status FILE`: what a snapshot file (a backup) holds, after checking every
// line's checksum, the trailer and the counts; a damaged or truncated one
// is refused with the reason. The group's other subcommands live in files
// of their own and register in snapshotSubcommands from their init
// functions (restore.go). It runs on the command's goroutine and only
// reads.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"synod/filestore"
	"synod/paxos"
)

func init() {
	commandMakers = append(commandMakers, snapshotCommand)
	snapshotSubcommands = append(snapshotSubcommands, snapshotStatusCommand)
}

// snapshotSubcommands is filled by each `synod snapshot` subcommand's file
// in an init function, as commandMakers is for the top-level commands.
var snapshotSubcommands []func() *cli.Command

func snapshotCommand() *cli.Command {
	var subs []*cli.Command
	for _, mk := range snapshotSubcommands {
		subs = append(subs, mk())
	}
	return &cli.Command{
		Name:  "snapshot",
		Usage: "backups: take one while the cluster serves, see what one holds, seed a new cluster from one",
		Description: "A backup is a snapshot file: the whole store at one index, one file per line, every\n" +
			"line and the whole body under CRC-32C. A replica keeps its newest snapshots in\n" +
			"<dir>/snap/<slot>.snap; any of them is a backup. A snapshot carries a large file's\n" +
			"manifest, not its bytes: a backup of a store with large files is a tar archive of the\n" +
			"snapshot file (member \"snapshot\") and every chunk they refer to (\"chunks/<sha256>\").",
		Subcommands: sortedCommands(subs),
	}
}

// sortedCommands orders commands by name, as --help lists them.
func sortedCommands(cmds []*cli.Command) []*cli.Command {
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].Name < cmds[j].Name })
	return cmds
}

// snapshotInfo is what `snapshot status` reports, and its --json form.
type snapshotInfo struct {
	File     string      `json:"file"`
	Size     int64       `json:"size"`
	Format   int         `json:"format"`
	Slot     uint64      `json:"slot"`
	Index    uint64      `json:"index"`
	LogTime  int64       `json:"log_time"` // milliseconds, the masters' clocks
	Members  []uint64    `json:"members"`
	Config   *configInfo `json:"config,omitempty"`
	Keys     int         `json:"keys"`
	Bytes    int64       `json:"bytes"` // of every value
	Sessions int         `json:"sessions"`
	Checksum string      `json:"checksum"` // the body's CRC-32C, as the trailer holds it
	Digest   string      `json:"digest"`   // the state digest replicas report in STATUS
	// A backup of large files is a tar archive of the snapshot and their
	// chunks (backupfile.go).
	Archive      bool  `json:"archive"`
	ChunksNeeded int   `json:"chunks_needed"` // distinct chunks its large files refer to
	ChunksHeld   int   `json:"chunks_held"`   // of those, the ones it carries
	ChunkBytes   int64 `json:"chunk_bytes"`
}

// configInfo is a snapshot's configuration line.
type configInfo struct {
	Slot    uint64       `json:"slot"`
	Members []dumpMember `json:"members"`
}

// errBadBackup marks a backup that is damaged, truncated or unusable: the
// offline commands exit 1 for it.
var errBadBackup = errors.New("not a usable backup")

// backupError gives a loadBackup error its exit code: 1 for a bad or
// missing file.
func backupError(what string, err error) error {
	return &exitError{code: 1, err: fmt.Errorf("%s: %w", what, err)}
}

func snapshotStatusCommand() *cli.Command {
	return &cli.Command{
		Name:      "status",
		Usage:     "what a snapshot file (a backup) holds, after checking every line of it",
		ArgsUsage: "FILE",
		Description: "Prints the slot and index it was taken at, the configuration, the number of keys,\n" +
			"the bytes of their values, the sessions, the checksum and the state digest (the one\n" +
			"`STATUS` shows for a replica that has applied that index), and the chunks of large\n" +
			"files it carries. A damaged or truncated file, or an archive that lacks a chunk its\n" +
			"files refer to, is refused with the reason, naming the line or the chunk (exit 1).",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object"},
			maxValueFlag(),
		},
		OnUsageError: onUsageError,
		Action: withLateFlags(nil, func(c *cli.Context, args []string) error {
			if len(args) != 1 {
				return usageError("snapshot status wants one argument, the snapshot file")
			}
			path := args[0]
			what := "snapshot status " + path
			bf, err := loadBackup(path, c.Int("max-value"))
			if err != nil {
				return backupError(what, err)
			}
			info := describeBackup(bf)
			if c.Bool("json") {
				err = json.NewEncoder(c.App.Writer).Encode(info)
			} else {
				err = writeSnapshotInfo(c, info)
			}
			if err != nil {
				return fmt.Errorf("%s: write output: %w", what, err)
			}
			return nil
		}),
	}
}

// describeBackup is describeSnapshot with what bf says of its chunks.
func describeBackup(bf *backupFile) snapshotInfo {
	info := describeSnapshot(bf.path, bf.m, bf.meta)
	info.Archive = bf.archive
	info.ChunksNeeded, info.ChunksHeld, info.ChunkBytes = len(bf.needed), bf.held, bf.heldBytes
	return info
}

func describeSnapshot(path string, m *filestore.Machine, meta filestore.SnapshotMeta) snapshotInfo {
	info := snapshotInfo{File: path, Format: meta.Format, Slot: meta.Slot, Index: meta.Index, LogTime: meta.LogTime,
		Members: meta.Members, Keys: meta.Files, Bytes: m.ValueBytes(), Sessions: meta.Sessions,
		Checksum: fmt.Sprintf("%08x", meta.Checksum), Digest: m.Digest()}
	if info.Members == nil {
		info.Members = []uint64{}
	}
	if fi, err := os.Stat(path); err == nil {
		info.Size = fi.Size()
	}
	if conf, err := paxos.ParseConfiguration(paxos.Value{Kind: paxos.ValueConfig, Cmds: meta.Config}); err == nil && len(meta.Config) > 0 {
		ci := &configInfo{Slot: meta.ConfigSlot}
		for _, mb := range conf.Members {
			ci.Members = append(ci.Members, dumpMember{ID: uint64(mb.ID), Addr: mb.Addr, Voter: mb.Voter})
		}
		info.Config = ci
	}
	return info
}

func writeSnapshotInfo(c *cli.Context, info snapshotInfo) error {
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	members := "-"
	if len(info.Members) > 0 {
		parts := make([]string, len(info.Members))
		for i, id := range info.Members {
			parts[i] = fmt.Sprint(id)
		}
		members = strings.Join(parts, ",")
	}
	logTime := "0"
	if info.LogTime > 0 {
		logTime = fmt.Sprintf("%s (%d)", time.UnixMilli(info.LogTime).UTC().Format("2006-01-02T15:04:05.000Z"), info.LogTime)
	}
	form := fmt.Sprintf("format %d", info.Format)
	if info.Archive {
		form = fmt.Sprintf("a tar archive of a format %d snapshot and its chunks", info.Format)
	}
	fmt.Fprintf(tw, "file\t%s (%d bytes, %s)\n", info.File, info.Size, form)
	fmt.Fprintf(tw, "slot\t%d\n", info.Slot)
	fmt.Fprintf(tw, "index\t%d\n", info.Index)
	fmt.Fprintf(tw, "log time\t%s\n", logTime)
	fmt.Fprintf(tw, "members\t%s\n", members)
	if info.Config != nil {
		var conf paxos.Configuration
		for _, m := range info.Config.Members {
			conf.Members = append(conf.Members, paxos.Member{ID: paxos.NodeID(m.ID), Addr: m.Addr, Voter: m.Voter})
		}
		fmt.Fprintf(tw, "config\t%s (chosen at slot %d)\n", membersText(conf), info.Config.Slot)
	}
	fmt.Fprintf(tw, "keys\t%d\n", info.Keys)
	fmt.Fprintf(tw, "bytes\t%d\n", info.Bytes)
	fmt.Fprintf(tw, "sessions\t%d\n", info.Sessions)
	fmt.Fprintf(tw, "checksum\tcrc32c %s (every line, the trailer and the counts check out)\n", info.Checksum)
	fmt.Fprintf(tw, "digest\t%s\n", info.Digest)
	switch {
	case info.Archive:
		fmt.Fprintf(tw, "chunks\t%d, %d bytes: every chunk its large files refer to, each checked against its SHA-256\n", info.ChunksHeld, info.ChunkBytes)
	case info.ChunksNeeded > 0:
		fmt.Fprintf(tw, "chunks\tnone: its large files refer to %d chunks this snapshot file does not carry (restore needs --chunks DIR)\n", info.ChunksNeeded)
	}
	return tw.Flush()
}
