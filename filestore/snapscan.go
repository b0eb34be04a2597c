package filestore

// This file owns reading only the large files' manifests out of a
// snapshot (the L lines), for a replica's chunk collector, which must know
// which chunks the snapshots it keeps on disk refer to without loading
// each one's whole state. It runs on the caller's goroutine.

import (
	"bufio"
	"io"
	"os"

	"synod/filestore/wal"
)

// SnapshotManifests calls fn with the manifest of every large file (every
// L line) of the snapshot r holds, checking each line's checksum on the
// way, and stops at fn's first error, which it returns. A damaged line is
// an ErrCorruptSnapshot naming it; the trailer and the order of keys are
// not checked (ReadSnapshot does that). The manifest is only valid during
// the call.
func SnapshotManifests(r io.Reader, opts Options, fn func(manifest []byte) error) error {
	if err := opts.Validate(); err != nil {
		return err
	}
	sr := snapshotReader{r: bufio.NewReaderSize(r, 16<<10), max: maxSnapshotLine(opts)}
	var fb [8][]byte
	for {
		line, err := sr.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if len(line) < 2 || line[0] != 'L' || line[1] != ' ' {
			continue
		}
		f, ok := split(line, 4, fb[:])
		if !ok {
			return sr.corrupt("file line: want 4 fields")
		}
		if sr.scratch, err = wal.Unescape(sr.scratch[:0], f[3]); err != nil {
			return sr.corrupt("bad value: %v", err)
		}
		if err := fn(sr.scratch); err != nil {
			return err
		}
	}
}

// SnapshotFileManifests is SnapshotManifests of the snapshot file at path.
func SnapshotFileManifests(path string, opts Options, fn func(manifest []byte) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return SnapshotManifests(f, opts, fn)
}
