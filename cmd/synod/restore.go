package main

// This file owns `synod snapshot restore FILE --dir D --id N --peers …`:
// seeding a replica's data directory from a backup (a snapshot file) as a
// member of a new cluster, offline. The operator runs it once per replica
// of the new cluster, with the same FILE and --peers and each replica's own
// --id and --dir; every run writes the same snapshot (the backup's state,
// its configuration replaced by --peers) and derives the same new cluster
// id, so the replicas agree on the state and the membership before any of
// them starts. It runs on the command's goroutine.
//
// What a restored directory holds, and why `synod node` starts on it as a
// voter of the new cluster (node/storage.go, openStorage):
//
//	snap/<S>.snap  the backup's files and sessions at its slot S and index,
//	               with the new configuration, chosen (say) at slot S
//	log/SEGMENTS   an empty log whose floor is S+1: the log holds nothing
//	               below it, the snapshot must cover it, so a replica that
//	               loses the snapshot notices it lost state
//	acceptor       promise 0.0, voter: nothing was ever promised or
//	               accepted in the new cluster (its id is new, so no
//	               replica of the old one can talk to it), so there is no
//	               vote to forget; "fresh" would ask the peers, see their
//	               snapshots and make every replica a learner
//	chunks/        every chunk the backup's large files refer to, taken
//	               from the backup's archive (or --chunks) and checked
//	               against its name, written first
//	IDENTITY       the new cluster id and --id, written last: a directory
//	               whose restore was interrupted has none, so `synod check`
//	               says so and a second restore needs --force
//
// The node then starts with every slot up to S applied from the snapshot
// and chosen, and the configuration in force from it; the first master's
// phase 1 starts at slot S+1, finds nothing accepted, and serves once its
// no-op there is chosen. No command was applied, so every replica reports
// the backup's own state digest until the first write.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	"synod/filestore"
	"synod/filestore/chunks"
	"synod/filestore/wal"
	"synod/paxos"
)

func init() { snapshotSubcommands = append(snapshotSubcommands, snapshotRestoreCommand) }

// restoreResult is what restore did, and its --json form.
type restoreResult struct {
	File     string       `json:"file"`
	Dir      string       `json:"dir"`
	ID       uint64       `json:"id"`
	Cluster  string       `json:"cluster"`
	Slot     uint64       `json:"slot"`
	Index    uint64       `json:"index"`
	Keys     int          `json:"keys"`
	Sessions int          `json:"sessions"`
	Members  []dumpMember `json:"members"`
	Digest   string       `json:"digest"`
	Chunks   int          `json:"chunks"`  // chunks of large files put in <dir>/chunks
	Command  string       `json:"command"` // how to start the replica
}

func snapshotRestoreCommand() *cli.Command {
	return &cli.Command{
		Name:      "restore",
		Usage:     "seed a replica's data directory from a backup, as a member of a new cluster (offline)",
		ArgsUsage: "FILE",
		Description: "Run it once for every replica of the new cluster, with the same FILE and --peers\n" +
			"and each replica's own --id and --dir, then start `synod node` on the directories\n" +
			"with the cluster id it prints: they elect a master and serve exactly the backup's\n" +
			"data. The cluster id is new (derived from the backup and --peers, so every run\n" +
			"gives the same one) unless --cluster names one. The chunks of large files go into\n" +
			"<dir>/chunks first, from the backup's archive (or --chunks for a snapshot file). A\n" +
			"backup that fails its checksums or lacks a chunk is refused, naming the line or the\n" +
			"chunk; so is a --dir that is not empty, unless --force.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "dir", Usage: "the data directory to create", EnvVars: env("dir")},
			&cli.Uint64Flag{Name: "id", Usage: "this replica's id, a key of --peers", EnvVars: env("id")},
			&cli.StringFlag{Name: "peers", Usage: "every replica of the new cluster: 1=host:port,2=host:port,…", EnvVars: env("peers")},
			&cli.StringFlag{Name: "cluster", Usage: "the new cluster's id (default: restored-<hash of the backup and --peers>)"},
			&cli.StringFlag{Name: "chunks", Usage: "a directory of chunk files (a replica's <dir>/chunks) to take large files' chunks from when FILE is a snapshot file, which carries only their manifests"},
			&cli.BoolFlag{Name: "force", Usage: "replace what --dir holds (IDENTITY, acceptor, JOIN, log, snap); stop its replica first"},
			&cli.BoolFlag{Name: "json", Usage: "print what was done as one JSON object"},
			maxValueFlag(),
		},
		OnUsageError: onUsageError,
		Action:       withLateFlags([]string{"dir", "id", "peers"}, runRestore),
	}
}

func runRestore(c *cli.Context, args []string) error {
	if len(args) != 1 {
		return usageError("snapshot restore wants one argument, the backup file (see synod snapshot restore --help)")
	}
	file, dir, id := args[0], c.String("dir"), c.Uint64("id")
	what := "snapshot restore " + file
	peers, err := parsePeers(c.String("peers"))
	if err != nil {
		return usageError("--peers: %v", err)
	}
	if _, ok := peers[id]; !ok {
		return usageError("--id %d is not one of --peers", id)
	}
	conf := peersConfiguration(peers)
	if err := conf.Validate(); err != nil {
		return usageError("--peers: %v", err)
	}
	cluster := c.String("cluster")
	if c.IsSet("cluster") && (cluster == "" || len(cluster) > 1024) {
		return usageError("--cluster must be 1 to 1024 bytes")
	}
	bf, err := loadBackup(file, c.Int("max-value"))
	if err != nil {
		return backupError(what, err)
	}
	res, err := restoreDir(dir, id, cluster, conf, bf, c.String("chunks"), c.Bool("force"))
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("%s: %w", what, err)}
	}
	res.File = file
	res.Command = fmt.Sprintf("synod node --id %d --cluster %s --listen %s --peers %s --dir %s",
		id, res.Cluster, peers[id], peersText(peers), dir)
	if c.Bool("json") {
		err = json.NewEncoder(c.App.Writer).Encode(res)
	} else {
		_, err = fmt.Fprintf(c.App.Writer, "restored %s into %s: slot %d, index %d, %d keys, %d sessions\n"+
			"  replica %d of cluster %s; members %s\n"+
			"  digest  %s\n"+
			"  start:  %s\n",
			file, dir, res.Slot, res.Index, res.Keys, res.Sessions, id, res.Cluster, membersText(conf), res.Digest, res.Command)
		if err == nil && res.Chunks > 0 {
			_, err = fmt.Fprintf(c.App.Writer, "  chunks  %d of large files, checked, in %s\n", res.Chunks, filepath.Join(dir, "chunks"))
		}
	}
	if err != nil {
		return fmt.Errorf("%s: write output: %w", what, err)
	}
	return nil
}

// peersConfiguration is the configuration --peers describes: every peer a
// voter.
func peersConfiguration(peers map[uint64]string) paxos.Configuration {
	ids := make([]paxos.NodeID, 0, len(peers))
	addrs := map[paxos.NodeID]string{}
	for id, addr := range peers {
		ids = append(ids, paxos.NodeID(id))
		addrs[paxos.NodeID(id)] = addr
	}
	return paxos.NewConfiguration(ids, addrs)
}

// peersText writes peers back as --peers takes them, in id order.
func peersText(peers map[uint64]string) string {
	ids := make([]uint64, 0, len(peers))
	for id := range peers {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprintf("%d=%s", id, peers[id])
	}
	return strings.Join(parts, ",")
}

// errNotEmpty is returned by restore for a --dir that holds files, without
// --force.
var errNotEmpty = errors.New("the directory is not empty")

// restoreDir writes the restored replica's directory (see the file
// comment) and checks it as `synod check` would. cluster "" means derive
// one; chunkDir, if not "", is where the chunks a snapshot file lacks are.
func restoreDir(dir string, id uint64, cluster string, conf paxos.Configuration, bf *backupFile, chunkDir string, force bool) (restoreResult, error) {
	var res restoreResult
	m, backup := bf.m, bf.meta
	if backup.Slot == math.MaxUint64 {
		return res, fmt.Errorf("%w: it is of slot %d, which leaves no slot for the new cluster", errBadBackup, backup.Slot)
	}
	meta := filestore.SnapshotMeta{
		Slot:       backup.Slot,
		Members:    make([]uint64, 0, len(conf.Members)),
		Config:     conf.Value().Cmds,
		ConfigSlot: backup.Slot,
	}
	for _, v := range conf.Voters() {
		meta.Members = append(meta.Members, uint64(v))
	}
	if cluster == "" {
		// Every run with the same backup and --peers writes the same
		// snapshot, so it derives the same id.
		h := sha256.New()
		if err := m.WriteSnapshot(h, meta); err != nil {
			return res, err
		}
		cluster = "restored-" + hex.EncodeToString(h.Sum(nil))[:12]
	}
	if err := bf.checkChunks(chunkDir); err != nil {
		return res, err
	}
	if err := prepareRestoreDir(dir, force); err != nil {
		return res, err
	}
	// The chunks first: a directory without IDENTITY is no replica's, so
	// nothing serves the files before their chunks are in place.
	if len(bf.needed) > 0 {
		store, err := chunks.Open(filepath.Join(dir, "chunks"))
		if err != nil {
			return res, err
		}
		if err := bf.writeChunks(store, chunkDir); err != nil {
			return res, err
		}
	}
	snapDir := filepath.Join(dir, "snap")
	if err := os.MkdirAll(snapDir, 0o755); err != nil {
		return res, err
	}
	if _, err := filestore.SaveSnapshot(snapDir, m, meta); err != nil {
		return res, err
	}
	l, _, err := wal.Open(filepath.Join(dir, "log"), wal.Options{}, nil)
	if err != nil {
		return res, err
	}
	if meta.Slot > 0 {
		// The floor: the snapshot covers every slot up to Slot, and the
		// log holds none of them.
		if err := l.TruncateBefore(meta.Slot + 1); err != nil {
			l.Close()
			return res, err
		}
	}
	if err := l.Close(); err != nil {
		return res, err
	}
	// The acceptor file's own directory fsync makes snap/ and log/ durable
	// too, before IDENTITY exists.
	if err := wal.WriteAcceptor(dir, wal.AcceptorState{Membership: wal.MemberVoter}); err != nil {
		return res, err
	}
	if err := wal.CreateIdentity(dir, cluster, id); err != nil {
		return res, err
	}
	findings, err := checkDataDir(dir, checkOptions{maxValue: m.Options().MaxValue, cluster: cluster, id: id})
	if err != nil {
		return res, err
	}
	for _, f := range findings {
		if f.Level != levelOK {
			return res, fmt.Errorf("the restored directory does not check out: %s %s: %s", f.Level, f.File, f.Message)
		}
	}
	res = restoreResult{Dir: dir, ID: id, Cluster: cluster, Slot: meta.Slot, Index: m.Applied(),
		Keys: m.Len(), Sessions: m.Sessions(), Digest: m.Digest(), Chunks: len(bf.needed)}
	for _, mb := range conf.Members {
		res.Members = append(res.Members, dumpMember{ID: uint64(mb.ID), Addr: mb.Addr, Voter: mb.Voter})
	}
	return res, nil
}

// restoredEntries are what a data directory may hold that restore
// replaces, IDENTITY first: once it is gone, the directory is no one's.
var restoredEntries = []string{"IDENTITY", "acceptor", "JOIN", "LEARNER", "log", "snap",
	"IDENTITY.tmp", "acceptor.tmp", "JOIN.tmp"}

// prepareRestoreDir makes dir an empty directory to restore into: it
// creates it, or accepts it empty, or with force clears a replica's files
// out of it (others are left alone).
func prepareRestoreDir(dir string, force bool) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		return syncDirOf(filepath.Dir(filepath.Clean(dir)))
	case err != nil:
		return err
	case !fi.IsDir():
		return fmt.Errorf("--dir %s is not a directory", dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(entries) == 0 {
		return nil
	}
	if !force {
		names := make([]string, 0, len(entries))
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return fmt.Errorf("%w: %s holds %s; give --force to replace a replica's files there (stop it first)",
			errNotEmpty, dir, strings.Join(names, ", "))
	}
	for _, name := range restoredEntries {
		if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
			return err
		}
		if name == "IDENTITY" {
			if err := syncDirOf(dir); err != nil {
				return err
			}
		}
	}
	return syncDirOf(dir)
}

// syncDirOf fsyncs a directory, making the entries created or removed in
// it durable.
func syncDirOf(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}
