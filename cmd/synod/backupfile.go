package main

// This file owns reading a backup, in either of its two forms, for
// `snapshot save` (checking what arrived), `snapshot status` and `snapshot
// restore`. It runs on the command's goroutine and only reads.
//
// A backup of a store without large files is a snapshot file, as a
// replica's <dir>/snap/<slot>.snap is. A backup of a store that holds large
// files is a tar archive (ustar; node/backup.go writes it) of
//
//	snapshot            that snapshot file
//	chunks/<sha256>     every chunk its large files refer to, once each
//
// so `tar xf` unpacks it, `sha256sum chunks/*` checks the chunks, and
// `tar xOf FILE snapshot` shows the snapshot. Every chunk is checked
// against its name as it is read, and an archive that lacks a chunk one of
// its files refers to is refused: a restored cluster could list the file
// but never read it. A plain snapshot file with large files carries only
// their manifests; restore takes their chunks from --chunks (a replica's
// chunks directory) or refuses.

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"synod/filestore"
	"synod/filestore/chunks"
	"synod/node"
	"synod/paxos"
	"synod/wire"
)

// errMissingChunks marks a backup that lacks chunks its large files refer
// to (with errBadBackup).
var errMissingChunks = errors.New("chunks of its large files are missing")

// chunkRef is one distinct chunk a backup's large files refer to.
type chunkRef struct {
	sum  chunks.Sum
	size int
	key  string // the first file that refers to it
}

// backupFile is a backup read and checked.
type backupFile struct {
	path      string
	m         *filestore.Machine
	meta      filestore.SnapshotMeta
	archive   bool // a tar of the snapshot and its chunks
	held      int  // distinct chunks it carries that a file refers to
	heldBytes int64
	needed    []chunkRef // distinct chunks its large files refer to
	missing   []chunkRef // those it does not carry
}

// isArchive reports whether head, a file's first bytes, starts a tar
// archive (the ustar magic at offset 257) rather than a snapshot file
// (which starts "SNAP ").
func isArchive(head []byte) bool {
	return len(head) >= 263 && string(head[257:262]) == "ustar"
}

// loadBackup reads and checks a backup: a snapshot file, or an archive of
// one and its chunks (every chunk checked against its name, none of those
// its files refer to missing). Its errors say what is wrong, naming the
// line of a damaged snapshot or the damaged chunk, and wrap errBadBackup or
// the I/O error.
func loadBackup(path string, maxValue int) (*backupFile, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("%s is a directory, not a snapshot file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	head := make([]byte, 512)
	k, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	bf := &backupFile{path: path, archive: isArchive(head[:k])}
	opts := filestore.Options{MaxValue: maxValue}
	if !bf.archive {
		bf.m, bf.meta, err = filestore.ReadSnapshot(f, opts)
		if err := snapshotErr(path, path, err); err != nil {
			return nil, err
		}
		bf.collectNeeded()
		bf.missing = bf.needed
		return bf, bf.checkConfig()
	}
	held := map[chunks.Sum]bool{}
	err = eachArchiveMember(f, path, func(name string, r io.Reader, size int64) error {
		if name == node.BackupSnapshotMember {
			if bf.m != nil {
				return fmt.Errorf("%w: %s holds two snapshots", errBadBackup, path)
			}
			var err error
			bf.m, bf.meta, err = filestore.ReadSnapshot(r, opts)
			return snapshotErr(path, path+":"+name, err)
		}
		sum, data, err := readArchiveChunk(path, name, r, size)
		if err != nil {
			return err
		}
		if !held[sum] {
			held[sum] = true
			bf.heldBytes += int64(len(data))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if bf.m == nil {
		return nil, fmt.Errorf("%w: %s is a tar archive without a %q member", errBadBackup, path, node.BackupSnapshotMember)
	}
	bf.collectNeeded()
	for _, c := range bf.needed {
		if held[c.sum] {
			bf.held++
		} else {
			bf.missing = append(bf.missing, c)
		}
	}
	if len(bf.missing) > 0 {
		return nil, bf.missingError(path)
	}
	return bf, bf.checkConfig()
}

// snapshotErr turns a ReadSnapshot error into loadBackup's.
func snapshotErr(path, what string, err error) error {
	var se *filestore.SnapshotError
	switch {
	case errors.As(err, &se):
		hint := "the file is damaged or incomplete"
		if strings.Contains(se.Reason, "larger than") || strings.Contains(se.Reason, "longer than") {
			hint = "a value larger than --max-value allows: give the replicas' --max-value"
		}
		return fmt.Errorf("%w: %s line %d: %s (%s)", errBadBackup, what, se.Line, se.Reason, hint)
	case errors.Is(err, filestore.ErrCorruptSnapshot):
		return fmt.Errorf("%w: %s: %v", errBadBackup, what, err)
	case err != nil:
		var pe *os.PathError
		if errors.As(err, &pe) {
			return err
		}
		return fmt.Errorf("%w: %s: %v", errBadBackup, what, err)
	}
	return nil
}

func (bf *backupFile) checkConfig() error {
	if len(bf.meta.Config) > 0 {
		if _, err := paxos.ParseConfiguration(paxos.Value{Kind: paxos.ValueConfig, Cmds: bf.meta.Config}); err != nil {
			return fmt.Errorf("%w: %s line 2: the configuration does not decode: %v", errBadBackup, bf.path, err)
		}
	}
	return nil
}

// collectNeeded lists the distinct chunks the state's large files refer
// to.
func (bf *backupFile) collectNeeded() {
	seen := map[chunks.Sum]bool{}
	bf.m.EachLarge(func(key string, text []byte) bool {
		mf, err := wire.ParseManifest(text)
		if err != nil {
			return true // ReadSnapshot checked it
		}
		for i, s := range mf.Chunks {
			if !seen[chunks.Sum(s)] {
				seen[chunks.Sum(s)] = true
				bf.needed = append(bf.needed, chunkRef{sum: chunks.Sum(s), size: mf.ChunkLen(i), key: key})
			}
		}
		return true
	})
}

// missingError names what bf lacks.
func (bf *backupFile) missingError(where string) error {
	c := bf.missing[0]
	return fmt.Errorf("%w: %w: %s lacks %d of the %d chunks its large files refer to (the first: %s of %s)",
		errBadBackup, errMissingChunks, where, len(bf.missing), len(bf.needed), c.sum, c.key)
}

// eachArchiveMember calls fn for every regular member of the tar archive r
// holds, with its name, its bytes and its size; the chunks directory is
// skipped and anything else refused.
func eachArchiveMember(r io.Reader, path string, fn func(name string, r io.Reader, size int64) error) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %s: the archive is damaged or incomplete: %v", errBadBackup, path, err)
		}
		switch {
		case h.Typeflag == tar.TypeDir && h.Name == node.BackupChunksDir:
			continue
		case h.Typeflag != tar.TypeReg:
			return fmt.Errorf("%w: %s: unexpected archive member %q", errBadBackup, path, h.Name)
		}
		if err := fn(h.Name, tr, h.Size); err != nil {
			return err
		}
	}
}

// readArchiveChunk reads the member name as a chunk and checks its bytes
// against its name.
func readArchiveChunk(path, name string, r io.Reader, size int64) (chunks.Sum, []byte, error) {
	hexSum, ok := strings.CutPrefix(name, node.BackupChunksDir)
	if !ok {
		return chunks.Sum{}, nil, fmt.Errorf("%w: %s: unexpected archive member %q", errBadBackup, path, name)
	}
	sum, err := chunks.ParseSum([]byte(hexSum))
	if err != nil {
		return sum, nil, fmt.Errorf("%w: %s: archive member %q is not named by a chunk's SHA-256", errBadBackup, path, name)
	}
	if size > chunks.MaxSize {
		return sum, nil, fmt.Errorf("%w: %s: chunk %s is %d bytes, over %d", errBadBackup, path, hexSum, size, chunks.MaxSize)
	}
	var buf bytes.Buffer
	buf.Grow(int(size))
	if _, err := io.Copy(&buf, r); err != nil {
		return sum, nil, fmt.Errorf("%w: %s: chunk %s: the archive is damaged or incomplete: %v", errBadBackup, path, hexSum, err)
	}
	if chunks.Of(buf.Bytes()) != sum {
		return sum, nil, fmt.Errorf("%w: %s: chunk %s is damaged: its bytes do not hash to its name", errBadBackup, path, hexSum)
	}
	return sum, buf.Bytes(), nil
}

// writeChunks stores every chunk bf's large files refer to in store: from
// the archive, or from dir (a replica's chunks directory, "" for none) for
// those a plain snapshot file lacks. It checks each again on the way, and
// refuses (errMissingChunks) if any is in neither.
func (bf *backupFile) writeChunks(store *chunks.Store, dir string) error {
	want := map[chunks.Sum]bool{}
	for _, c := range bf.needed {
		want[c.sum] = true
	}
	if bf.archive {
		f, err := os.Open(bf.path)
		if err != nil {
			return err
		}
		defer f.Close()
		err = eachArchiveMember(f, bf.path, func(name string, r io.Reader, size int64) error {
			if name == node.BackupSnapshotMember {
				return nil
			}
			sum, data, err := readArchiveChunk(bf.path, name, r, size)
			if err != nil || !want[sum] {
				return err
			}
			delete(want, sum)
			return store.Put(sum, data)
		})
		if err != nil {
			return err
		}
	}
	var missing []chunkRef
	for _, c := range bf.needed {
		if !want[c.sum] {
			continue
		}
		if dir == "" {
			missing = append(missing, c)
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, c.sum.String()))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			missing = append(missing, c)
			continue
		case err != nil:
			return err
		case chunks.Of(data) != c.sum:
			return fmt.Errorf("%w: chunk %s in %s is damaged: its bytes do not hash to its name", errBadBackup, c.sum, dir)
		}
		if err := store.Put(c.sum, data); err != nil {
			return err
		}
	}
	return bf.lacking(missing, dir)
}

// checkChunks reports, before anything is written, whether writeChunks
// with dir would find every chunk: the same error if not.
func (bf *backupFile) checkChunks(dir string) error {
	var missing []chunkRef
	for _, c := range bf.missing {
		if dir == "" {
			missing = append(missing, c)
		} else if _, err := os.Stat(filepath.Join(dir, c.sum.String())); err != nil {
			missing = append(missing, c)
		}
	}
	return bf.lacking(missing, dir)
}

// lacking is the error for the chunks missing found in neither bf nor dir,
// nil if there are none.
func (bf *backupFile) lacking(missing []chunkRef, dir string) error {
	if len(missing) == 0 {
		return nil
	}
	where := bf.path
	if dir != "" {
		where += " and " + dir
	}
	short := &backupFile{needed: bf.needed, missing: missing}
	err := short.missingError(where)
	if !bf.archive && dir == "" {
		err = fmt.Errorf("%w; it is a snapshot file, which carries large files' manifests but not their chunks: take the backup with `synod snapshot save`, or give --chunks with a replica's chunks directory", err)
	}
	return err
}
