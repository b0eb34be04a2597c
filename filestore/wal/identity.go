package wal

// This file owns the IDENTITY file, which ties a data directory to one
// node of one cluster: creating it once, reading and checking it.
// Stateless: the caller's goroutine (a node's New, the offline commands).

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// The IDENTITY file ties a data directory to one node of one cluster:
//
//	synod-identity 1 <cluster> <node> <crc>
//
// cluster is escaped like a log command, node is decimal, crc is the
// CRC-32C of the bytes before its space. The 1 is the format version.
const (
	identityFile   = "IDENTITY"
	identityPrefix = "synod-identity 1 "
	// maxClusterLen bounds a cluster id.
	maxClusterLen = 1024
)

// CreateIdentity writes <dir>/IDENTITY for node of cluster, creating dir if
// needed. It refuses (errors.Is(err, fs.ErrExist)) to overwrite an existing
// IDENTITY, so a directory never changes owner. cluster must be 1 to 1024
// bytes. Two processes must not create the same directory at once.
func CreateIdentity(dir, cluster string, node uint64) error {
	if len(cluster) == 0 || len(cluster) > maxClusterLen {
		return fmt.Errorf("wal: create identity: cluster id must be 1 to %d bytes, got %d", maxClusterLen, len(cluster))
	}
	if err := ensureDir(dir); err != nil {
		return err
	}
	path := filepath.Join(dir, identityFile)
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("wal: create identity %s: %w", path, fs.ErrExist)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("wal: create identity: %w", err)
	}
	line := []byte(identityPrefix)
	line = Escape(line, []byte(cluster))
	line = append(line, ' ')
	line = appendCRC(strconv.AppendUint(line, node, 10), 0)
	if err := writeFileAtomic(dir, identityFile, line); err != nil {
		return fmt.Errorf("wal: create identity: %w", err)
	}
	return nil
}

// ReadIdentity returns the cluster and node named by <dir>/IDENTITY. A
// missing file is ErrNoIdentity; a damaged one a *CorruptError.
func ReadIdentity(dir string) (cluster string, node uint64, err error) {
	path := filepath.Join(dir, identityFile)
	data, err := readSmallFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", 0, fmt.Errorf("%w in %s", ErrNoIdentity, dir)
	}
	if err != nil {
		return "", 0, fmt.Errorf("wal: read identity: %w", err)
	}
	cluster, node, err = parseIdentity(data)
	if err != nil {
		return "", 0, &CorruptError{File: path, Line: 1, Reason: err.Error()}
	}
	return cluster, node, nil
}

func parseIdentity(data []byte) (string, uint64, error) {
	content, err := checkLineCRC(data)
	if err != nil {
		return "", 0, err
	}
	rest, ok := bytes.CutPrefix(content, []byte(identityPrefix))
	if !ok {
		return "", 0, errors.New("not an IDENTITY file of format 1")
	}
	f := fields{s: rest}
	c, err := Unescape(nil, f.next())
	if err != nil {
		return "", 0, err
	}
	node := f.uint()
	if !f.end() || len(c) == 0 || len(c) > maxClusterLen {
		return "", 0, errFields
	}
	return string(c), node, nil
}

// CheckIdentity returns nil if <dir>/IDENTITY names node of cluster,
// ErrNoIdentity if there is none, and ErrWrongIdentity, naming both
// identities, if it names another.
func CheckIdentity(dir, cluster string, node uint64) error {
	c, n, err := ReadIdentity(dir)
	if err != nil {
		return err
	}
	if c != cluster || n != node {
		return fmt.Errorf("%w: %s belongs to cluster %q node %d, not cluster %q node %d",
			ErrWrongIdentity, dir, c, n, cluster, node)
	}
	return nil
}
