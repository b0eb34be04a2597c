package main

// This file owns the offline inspection of a replica's data directory that
// `synod check` prints: IDENTITY, the acceptor file, JOIN, every snapshot,
// the log (through wal.Verify, the log recovery's own logic, read-only),
// and whether they fit together the way the node's start (node/storage.go,
// openStorage) needs. It only reads: nothing here opens a file for
// writing, so it is safe on the directory of a replica that is stopped (or
// on a copy of one). It runs on the command's goroutine.

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"synod/filestore"
	"synod/filestore/wal"
	"synod/paxos"
)

// Levels of a finding.
const (
	levelOK      = "ok"      // as it should be
	levelWarning = "warning" // not damage: the node copes with it by itself at its next start
	levelError   = "error"   // damage, lost state, or a directory the node would refuse
)

// finding is one line of `synod check`: what was found in which file (and
// line, for damage), relative to the data directory.
type finding struct {
	Level   string `json:"level"`
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Message string `json:"message"`
}

// checkOptions are what `synod check` may be told about the directory.
type checkOptions struct {
	maxValue int    // the replica's --max-value, which bounds snapshot lines
	cluster  string // if not "", the cluster IDENTITY must name
	id       uint64 // if not 0, the node IDENTITY must name
}

// dirChecker gathers the findings of one check.
type dirChecker struct {
	dir      string
	opts     checkOptions
	findings []finding

	node      uint64 // from IDENTITY, 0 if unknown
	hasIdent  bool
	newestOK  *filestore.SnapshotMeta // the newest snapshot, if it is good
	newest    uint64                  // slot of the newest snapshot file
	conf      paxos.Configuration     // the newest good snapshot's configuration
	confSlot  uint64                  // and the slot that chose it
	snapshots int
	join      *joinFound
}

// joinFound is what the JOIN file holds.
type joinFound struct {
	slot uint64
	conf paxos.Configuration
}

// checkDataDir inspects dir and returns what it found, in the order it
// looked. It fails only for a dir it cannot look at (not a directory).
func checkDataDir(dir string, opts checkOptions) ([]finding, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", dir)
	}
	c := &dirChecker{dir: dir, opts: opts}
	c.identity()
	c.acceptor()
	c.joinFile()
	c.snapshotFiles()
	c.membership()
	c.logFiles()
	c.leftovers()
	return c.findings, nil
}

func (c *dirChecker) add(level, file string, line int, format string, args ...any) {
	c.findings = append(c.findings, finding{Level: level, File: file, Line: line, Message: fmt.Sprintf(format, args...)})
}

// rel names path relative to the data directory, as findings do.
func (c *dirChecker) rel(path string) string {
	if r, err := filepath.Rel(c.dir, path); err == nil && !strings.HasPrefix(r, "..") {
		return filepath.ToSlash(r)
	}
	return path
}

// damage adds err as an error finding, at its file and line when it names
// them.
func (c *dirChecker) damage(file string, err error, consequence string) {
	var ce *wal.CorruptError
	var se *filestore.SnapshotError
	switch {
	case errors.As(err, &ce):
		c.add(levelError, c.rel(ce.File), ce.Line, "%s%s", ce.Reason, consequence)
	case errors.As(err, &se):
		c.add(levelError, file, se.Line, "%s%s", se.Reason, consequence)
	default:
		c.add(levelError, file, 0, "%v%s", err, consequence)
	}
}

func (c *dirChecker) identity() {
	cluster, node, err := wal.ReadIdentity(c.dir)
	switch {
	case errors.Is(err, wal.ErrNoIdentity):
		if empty, _ := isEmptyDir(c.dir); empty {
			c.add(levelError, "IDENTITY", 0, "missing: the directory is empty (a new replica's, or not a data directory at all)")
			return
		}
		c.add(levelError, "IDENTITY", 0, "missing, but the directory holds other files: a node would take it for a new (or wiped) directory and vote only once its peers say the cluster is new (an interrupted first start or restore?)")
		return
	case err != nil:
		c.damage("IDENTITY", err, ": the node refuses to start on this directory")
		return
	}
	c.hasIdent, c.node = true, node
	if (c.opts.cluster != "" && cluster != c.opts.cluster) || (c.opts.id != 0 && node != c.opts.id) {
		c.add(levelError, "IDENTITY", 1, "belongs to cluster %q node %d, not the cluster %q node %d asked about: a node started that way refuses it", cluster, node, orDefault(c.opts.cluster, cluster), orZero(c.opts.id, node))
		return
	}
	c.add(levelOK, "IDENTITY", 0, "cluster %q, node %d", cluster, node)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func orZero(v, def uint64) uint64 {
	if v == 0 {
		return def
	}
	return v
}

func (c *dirChecker) acceptor() {
	acc, err := wal.ReadAcceptor(c.dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if c.hasIdent {
			c.add(levelError, "acceptor", 0, "missing: the replica has forgotten its promise (lost state), so it rejoins as a learner")
		}
		return
	case err != nil:
		c.damage("acceptor", err, ": the node refuses to start on this directory")
		return
	}
	format := ""
	if acc.Membership == "" {
		marker, err := wal.ReadLearner(c.dir)
		if err != nil {
			c.damage("LEARNER", err, ": the node refuses to start on this directory")
			return
		}
		acc.Membership = map[string]string{"": wal.MemberVoter, wal.LearnerFresh: wal.MemberFresh, wal.LearnerWiped: wal.MemberLearner}[marker]
		format = " (format 1, rewritten as format 2 at the next start)"
	}
	switch acc.Membership {
	case wal.MemberVoter:
		c.add(levelOK, "acceptor", 0, "promise %s, voter%s", acc.Promise, format)
	case wal.MemberFresh:
		c.add(levelWarning, "acceptor", 0, "promise %s, fresh: a new directory; the replica votes once its peers say the cluster is new%s", acc.Promise, format)
	case wal.MemberLearner:
		c.add(levelWarning, "acceptor", 0, "promise %s, learner: it may have forgotten votes, so it does not vote until a master has run phase 1 without it and it has caught up%s", acc.Promise, format)
	}
}

func (c *dirChecker) joinFile() {
	slot, cmds, err := wal.ReadJoin(c.dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return
	case err != nil:
		c.damage("JOIN", err, ": the node refuses to start on this directory")
		return
	}
	conf, err := paxos.ParseConfiguration(paxos.Value{Kind: paxos.ValueConfig, Cmds: cmds})
	if err != nil {
		c.add(levelError, "JOIN", 1, "the configuration does not decode (%v): the node refuses to start on this directory", err)
		return
	}
	c.join = &joinFound{slot: slot, conf: conf}
	c.add(levelOK, "JOIN", 0, "joined the configuration chosen at slot %d: %s", slot, membersText(conf))
}

// membersText lists a configuration's members with their addresses,
// learners marked with a plus: "1=a:1 2=b:2 +4=d:4".
func membersText(conf paxos.Configuration) string {
	parts := make([]string, 0, len(conf.Members))
	for _, m := range conf.Members {
		addr := orDefault(m.Addr, "?")
		if !utf8.ValidString(addr) || strings.IndexFunc(addr, func(r rune) bool { return !unicode.IsGraphic(r) }) >= 0 {
			addr = strconv.Quote(addr)
		}
		p := fmt.Sprintf("%d=%s", m.ID, addr)
		if !m.Voter {
			p = "+" + p
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, " ")
}

func (c *dirChecker) snapshotFiles() {
	snapDir := filepath.Join(c.dir, "snap")
	if _, err := os.Stat(snapDir); errors.Is(err, fs.ErrNotExist) {
		return
	}
	slots, err := filestore.ListSnapshots(snapDir)
	if err != nil {
		c.add(levelError, "snap", 0, "cannot list: %v", err)
		return
	}
	c.snapshots = len(slots)
	for i, slot := range slots {
		path := filestore.SnapshotPath(snapDir, slot)
		name := c.rel(path)
		newest := i == len(slots)-1
		consequence := ""
		if newest {
			c.newest = slot
			consequence = ": this is the newest snapshot, which the node starts from: it refuses to start"
		}
		m, meta, err := filestore.LoadSnapshot(path, filestore.Options{MaxValue: c.opts.maxValue})
		if err != nil {
			c.damage(name, err, consequence)
			continue
		}
		conf := ""
		if len(meta.Config) > 0 {
			cf, err := paxos.ParseConfiguration(paxos.Value{Kind: paxos.ValueConfig, Cmds: meta.Config})
			if err != nil {
				c.add(levelError, name, 2, "the configuration does not decode (%v)%s", err, consequence)
				continue
			}
			conf = fmt.Sprintf(", configuration of slot %d: %s", meta.ConfigSlot, membersText(cf))
			if newest {
				c.conf, c.confSlot = cf, meta.ConfigSlot
			}
		}
		c.add(levelOK, name, 0, "slot %d, index %d, %s (%d bytes), %s%s", meta.Slot, meta.Index, plural(meta.Files, "file"), m.ValueBytes(), plural(meta.Sessions, "session"), conf)
		if newest {
			c.newestOK = &meta
			c.chunkFiles(m)
		}
	}
}

// chunkFiles reports the chunks the newest snapshot's large files refer to
// that <dir>/chunks lacks, or holds at another size. Not damage: the node
// fetches them from a peer once it starts, but with no peer holding them
// those files cannot be read. Their bytes are not hashed here (a replica
// checks a chunk every time it reads it).
func (c *dirChecker) chunkFiles(m *filestore.Machine) {
	bf := &backupFile{m: m}
	bf.collectNeeded()
	if len(bf.needed) == 0 {
		return
	}
	dir := filepath.Join(c.dir, "chunks")
	var missing []chunkRef
	for _, ch := range bf.needed {
		fi, err := os.Stat(filepath.Join(dir, ch.sum.String()))
		if err != nil || fi.Size() != int64(ch.size) {
			missing = append(missing, ch)
		}
	}
	if len(missing) == 0 {
		c.add(levelOK, "chunks", 0, "every one of the %s the newest snapshot's large files refer to", plural(len(bf.needed), "chunk"))
		return
	}
	c.add(levelWarning, "chunks", 0, "%d of the %s the newest snapshot's large files refer to are missing or of the wrong size (the first: %s of %s); the node fetches them from a peer, and without one those files cannot be read",
		len(missing), plural(len(bf.needed), "chunk"), missing[0].sum, missing[0].key)
}

// membership reports a configuration in force (the newest snapshot's, or
// the one joined if that is newer, as openStorage picks it) that no longer
// includes this replica: the node refuses to start (it was removed).
func (c *dirChecker) membership() {
	conf, slot, file := c.conf, c.confSlot, c.rel(filestore.SnapshotPath(filepath.Join(c.dir, "snap"), c.newest))
	if c.join != nil && (c.join.slot >= slot || len(conf.Members) == 0) {
		conf, slot, file = c.join.conf, c.join.slot, "JOIN"
	}
	if c.node == 0 || slot == 0 {
		return
	}
	if _, ok := conf.Member(paxos.NodeID(c.node)); !ok {
		c.add(levelError, file, 0, "the configuration in force (chosen at slot %d: %s) does not include replica %d: it was removed, and the node does not start again on this directory", slot, membersText(conf), c.node)
	}
}

// logFiles checks the log with wal.Verify and how it fits the snapshots.
func (c *dirChecker) logFiles() {
	logDir := filepath.Join(c.dir, "log")
	var minSlot, maxSlot, committed uint64
	var accepts int
	rep, err := wal.Verify(logDir, wal.Options{}, func(_ wal.Position, r wal.Record) error {
		switch r.Kind {
		case wal.KindAccept:
			if accepts == 0 || r.Slot < minSlot {
				minSlot = r.Slot
			}
			maxSlot = max(maxSlot, r.Slot)
			accepts++
		case wal.KindCommit:
			committed = max(committed, r.Slot)
		}
		return nil
	})
	if err != nil {
		c.add(levelError, "log", 0, "cannot read: %v", err)
		return
	}
	if !rep.Exists {
		if c.hasIdent {
			c.add(levelError, "log", 0, "missing: the replica has lost its log (lost state), so it rejoins as a learner")
		}
		return
	}
	const refuses = ": acknowledged data is damaged, so the node refuses to start (--repair cuts the log there, and the replica rejoins as a learner)"
	switch {
	case rep.ManifestDamage != nil:
		c.damage("log/SEGMENTS", rep.ManifestDamage, ": the node refuses to start (--repair rebuilds it from the segments)")
	case rep.Manifest:
		c.add(levelOK, "log/SEGMENTS", 0, "%s listed, floor %d", plural(rep.Listed, "segment"), rep.Floor)
	}
	for _, m := range rep.Missing {
		file := "log/SEGMENTS"
		if name, ok := strings.CutPrefix(m, "segment "); ok {
			file = "log/" + name
			c.add(levelError, file, 0, "missing, but log/SEGMENTS lists it: the replica has lost part of its log (lost state), so it rejoins as a learner")
			continue
		}
		c.add(levelError, file, 0, "missing, but the log has segments: the replica cannot tell whether some are gone (lost state), so it rejoins as a learner")
	}
	for _, s := range rep.Segments {
		name := c.rel(s.Path)
		switch {
		case s.Stale:
			c.add(levelWarning, name, 0, "not listed in log/SEGMENTS: left by a log truncation that was interrupted; the node deletes it at its next start")
			continue
		case s.Unlisted:
			c.add(levelWarning, name, 0, "newer than every segment log/SEGMENTS lists: a new segment whose listing was interrupted; the node keeps it and lists it at its next start")
		}
		if s.Err != nil {
			line := 0
			if errors.Is(s.Err, wal.ErrVersion) {
				line = 1 // the version line
			}
			c.add(levelError, name, line, "cannot be read: %v", s.Err)
		}
		for _, d := range s.Damage {
			c.damage(name, d, refuses)
		}
		if s.Torn {
			c.add(levelWarning, name, s.TornLine, "ends in an incomplete batch of %d bytes, a write interrupted by a crash and never acknowledged: the node cuts it off at its next start", s.TornBytes)
		}
		if s.Err == nil && len(s.Damage) == 0 {
			slots := "no records"
			if s.Records > 0 {
				slots = fmt.Sprintf("slots %d to %d", s.MinSlot, s.MaxSlot)
			}
			c.add(levelOK, name, 0, "%d batches, %d records, %s", s.Batches, s.Records, slots)
		}
	}
	c.consistency(rep, accepts, minSlot, maxSlot, committed)
}

// consistency reports whether the snapshots and the log make one state:
// the log may have been truncated only behind a snapshot that is still
// there (openStorage's rule).
func (c *dirChecker) consistency(rep *wal.VerifyReport, accepts int, minSlot, maxSlot, committed uint64) {
	applied := uint64(0)
	if c.newestOK != nil {
		applied = c.newestOK.Slot
	}
	if rep.Floor > 1 && applied+1 < rep.Floor {
		what := "there is no snapshot"
		switch {
		case c.snapshots > 0 && c.newestOK == nil:
			what = fmt.Sprintf("the newest snapshot (slot %d) is damaged", c.newest)
		case c.newestOK != nil:
			what = fmt.Sprintf("the newest snapshot is of slot %d", applied)
		}
		c.add(levelError, "log/SEGMENTS", 1, "the log was truncated behind slot %d, but %s: the slots below %d are gone (lost state); the replica starts empty and rejoins as a learner", rep.Floor, what, rep.Floor)
		return
	}
	if (c.snapshots > 0 && c.newestOK == nil) || rep.Damaged() {
		return // the node would not start: already reported
	}
	state := "no snapshot"
	if c.newestOK != nil {
		state = fmt.Sprintf("the snapshot of slot %d (index %d)", applied, c.newestOK.Index)
	}
	log := "an empty log"
	if accepts > 0 {
		log = fmt.Sprintf("a log of %s for slots %d to %d, chosen up to slot %d", plural(accepts, "accepted value"), minSlot, maxSlot, committed)
	}
	c.add(levelOK, "", 0, "the node would start from %s and %s", state, log)
}

// leftovers reports the temporary files interrupted writes leave behind.
func (c *dirChecker) leftovers() {
	for _, sub := range []string{".", "snap", "log"} {
		entries, err := os.ReadDir(filepath.Join(c.dir, sub))
		if err != nil {
			continue
		}
		names := make([]string, 0, len(entries))
		for _, e := range entries {
			names = append(names, e.Name())
		}
		sort.Strings(names)
		for _, n := range names {
			file := filepath.ToSlash(filepath.Join(sub, n))
			switch {
			case strings.HasSuffix(n, ".tmp") && strings.HasPrefix(n, ".snap-"):
				c.add(levelWarning, file, 0, "a snapshot whose save was interrupted: ignored, and deleted when the node next prunes its snapshots")
			case strings.HasSuffix(n, ".tmp"):
				c.add(levelWarning, file, 0, "a replacement whose write was interrupted: ignored (the file it would have replaced is intact)")
			case n == "incoming.part":
				c.add(levelWarning, file, 0, "a snapshot transfer that was interrupted: ignored")
			}
		}
	}
}

// isEmptyDir reports whether dir has no entries.
func isEmptyDir(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	if _, err := f.Readdirnames(1); errors.Is(err, io.EOF) {
		return true, nil
	} else if err != nil {
		return false, err
	}
	return false, nil
}
