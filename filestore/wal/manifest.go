package wal

// This file owns the log's manifest, log/SEGMENTS: the one place that says
// which segments the log holds, so a segment deleted by hand, or the whole
// log directory, is noticed as lost state rather than read as a shorter log.
// It is one line, replaced atomically like the acceptor file:
//
//	synod-segments 1 <floor> <name>... <crc>
//
// floor is the slot below which TruncateBefore dropped records (a snapshot
// must cover them); each name is a segment's first-slot name, in write
// order. It is written when the log is created, before a new segment gets
// its first batch, and before TruncateBefore deletes files. It runs on the
// caller's goroutine: in Open and Verify before any Log is shared, in a
// segment roll and TruncateBefore under the Log's mutex.

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
)

const (
	manifestFile   = "SEGMENTS"
	manifestPrefix = "synod-segments 1 "
	// maxManifest bounds the manifest: about 3,000 segment names.
	maxManifest = 64 << 10
)

// ErrSync is wrapped by every error of an fsync (of a file or a directory)
// in this package. After a failed fsync what reached the disk is unknown,
// and the page cache may show writes the disk never got: the process must
// end and recover from its files (DESIGN.md, trap 10), never retry in place.
var ErrSync = errors.New("wal: fsync failed")

// manifest is the content of log/SEGMENTS.
type manifest struct {
	floor uint64
	names []uint64
}

func (m manifest) encode() []byte {
	line := []byte(manifestPrefix)
	line = strconv.AppendUint(line, m.floor, 10)
	for _, n := range m.names {
		line = append(line, ' ')
		line = strconv.AppendUint(line, n, 10)
	}
	return appendCRC(line, 0)
}

func parseManifest(data []byte) (manifest, error) {
	var m manifest
	content, err := checkLineCRC(data)
	if err != nil {
		return m, err
	}
	rest, ok := bytes.CutPrefix(content, []byte(manifestPrefix))
	if !ok {
		return m, errors.New("not a segment manifest of format 1")
	}
	for i, field := range bytes.Split(rest, []byte{' '}) {
		n, ok := ParseUint(field)
		if !ok {
			return m, fmt.Errorf("bad number %q", field)
		}
		if i == 0 {
			m.floor = n
			continue
		}
		if k := len(m.names); k > 0 && n <= m.names[k-1] {
			return m, errors.New("segment names out of order")
		}
		m.names = append(m.names, n)
	}
	return m, nil
}

// readManifest reads dir's manifest; a missing one is fs.ErrNotExist, a
// damaged one a *CorruptError.
func readManifest(dir string) (manifest, error) {
	path := filepath.Join(dir, manifestFile)
	data, err := readLimited(path, maxManifest)
	if err != nil {
		return manifest{}, err
	}
	m, err := parseManifest(data)
	if err != nil {
		return manifest{}, &CorruptError{File: path, Line: 1, Reason: err.Error()}
	}
	return m, nil
}

// writeManifest durably replaces dir's manifest.
func writeManifest(dir string, m manifest) error {
	if err := writeFileAtomic(dir, manifestFile, m.encode()); err != nil {
		return fmt.Errorf("wal: write manifest: %w", err)
	}
	return nil
}

// reconcile checks the segments found in the directory against the
// manifest and returns the segments to read, the ones to delete (left over
// from a TruncateBefore that crashed after rewriting the manifest) and what
// is missing. A segment newer than every listed one is kept: a roll that
// crashed after creating it and before listing it.
func reconcile(m manifest, found []segment) (keep, stale []segment, missing []string) {
	listed := map[uint64]bool{}
	for _, n := range m.names {
		listed[n] = true
	}
	present := map[uint64]bool{}
	last := uint64(0)
	if k := len(m.names); k > 0 {
		last = m.names[k-1]
	}
	for _, s := range found {
		present[s.name] = true
		switch {
		case listed[s.name], len(m.names) == 0 || s.name > last:
			keep = append(keep, s)
		default:
			stale = append(stale, s)
		}
	}
	for _, n := range m.names {
		if !present[n] {
			missing = append(missing, "segment "+segmentFile(n))
		}
	}
	return keep, stale, missing
}

// manifestOf lists segs as a manifest with floor.
func manifestOf(floor uint64, segs []segment) manifest {
	m := manifest{floor: floor}
	for _, s := range segs {
		m.names = append(m.names, s.name)
	}
	slices.Sort(m.names)
	return m
}

// openManifest reads dir's manifest for Open, or reports it missing.
func openManifest(dir string) (m manifest, missing bool, err error) {
	m, err = readManifest(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return manifest{}, true, nil
	}
	return m, false, err
}
