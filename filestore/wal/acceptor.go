package wal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// The acceptor file holds the promised ballot as one line:
//
//	synod-acceptor 1 <round>.<node> <crc>
//
// where crc is the CRC-32C of the bytes before its space, 8 lower-case hex
// digits. The 1 is the format version.
const (
	acceptorFile   = "acceptor"
	acceptorPrefix = "synod-acceptor 1 "
	// maxSmallFile bounds what ReadAcceptor and ReadIdentity read: both
	// files are one short line.
	maxSmallFile = 4 << 10
)

// WriteAcceptor durably replaces <dir>/acceptor with ballot b: it writes a
// temporary file, fsyncs it, renames it over the old one and fsyncs dir, so
// a crash leaves either the old or the new ballot, never a mix. It must
// return before the acceptor answers a Prepare. Calls for the same dir must
// not overlap.
func WriteAcceptor(dir string, b Ballot) error {
	line := appendCRC(b.append([]byte(acceptorPrefix)), 0)
	if err := writeFileAtomic(dir, acceptorFile, line); err != nil {
		return fmt.Errorf("wal: write acceptor: %w", err)
	}
	return nil
}

// ReadAcceptor returns the ballot stored by WriteAcceptor in dir. If there
// is no acceptor file (a new or wiped directory) it returns the zero Ballot
// and an error for which errors.Is(err, fs.ErrNotExist) holds. A damaged
// file is a *CorruptError.
func ReadAcceptor(dir string) (Ballot, error) {
	path := filepath.Join(dir, acceptorFile)
	data, err := readSmallFile(path)
	if err != nil {
		return Ballot{}, fmt.Errorf("wal: read acceptor: %w", err)
	}
	b, err := parseAcceptor(data)
	if err != nil {
		return Ballot{}, &CorruptError{File: path, Line: 1, Reason: err.Error()}
	}
	return b, nil
}

func parseAcceptor(data []byte) (Ballot, error) {
	content, err := checkLineCRC(data)
	if err != nil {
		return Ballot{}, err
	}
	rest, ok := bytes.CutPrefix(content, []byte(acceptorPrefix))
	if !ok {
		return Ballot{}, errors.New("not an acceptor file of format 1")
	}
	b, ok := parseBallot(rest)
	if !ok {
		return Ballot{}, errors.New("bad ballot")
	}
	return b, nil
}

// readSmallFile reads a file that must be at most maxSmallFile bytes.
func readSmallFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSmallFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxSmallFile {
		return nil, &CorruptError{File: path, Line: 1, Reason: fmt.Sprintf("file larger than %d bytes", maxSmallFile)}
	}
	return data, nil
}

// writeFileAtomic replaces dir/name with data: temp file, write, fsync,
// close, rename, fsync dir.
func writeFileAtomic(dir, name string, data []byte) (err error) {
	tmp := filepath.Join(dir, name+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	return syncDir(dir)
}
