package wal

// This file owns the JOIN file, the configuration a replica joined a
// running cluster with and the slot that chose it. Stateless: the caller's
// goroutine (a node's New writes and reads it; the offline commands read
// it).

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
)

// The JOIN file of a replica that joined a running cluster (synod node
// --join) holds the configuration it joined, as the log holds it, and the
// slot that chose it:
//
//	synod-join 1 <slot> <cmd>... <crc>
//
// each cmd escaped like a log command. It is written once, before IDENTITY,
// so a replica that joined knows its configuration on every start, until a
// snapshot carries a newer one.
const (
	joinFile   = "JOIN"
	joinPrefix = "synod-join 1 "
)

// WriteJoin durably writes dir's JOIN file.
func WriteJoin(dir string, slot uint64, cmds [][]byte) error {
	line := strconv.AppendUint([]byte(joinPrefix), slot, 10)
	for _, c := range cmds {
		line = Escape(append(line, ' '), c)
	}
	if err := writeFileAtomic(dir, joinFile, appendCRC(line, 0)); err != nil {
		return fmt.Errorf("wal: write join file: %w", err)
	}
	return nil
}

// ReadJoin reads dir's JOIN file; a missing one is fs.ErrNotExist, a
// damaged one a *CorruptError.
func ReadJoin(dir string) (slot uint64, cmds [][]byte, err error) {
	path := filepath.Join(dir, joinFile)
	data, err := readSmallFile(path)
	if err != nil {
		return 0, nil, fmt.Errorf("wal: read join file: %w", err)
	}
	slot, cmds, err = parseJoin(data)
	if err != nil {
		return 0, nil, &CorruptError{File: path, Line: 1, Reason: err.Error()}
	}
	return slot, cmds, nil
}

func parseJoin(data []byte) (uint64, [][]byte, error) {
	content, err := checkLineCRC(data)
	if err != nil {
		return 0, nil, err
	}
	rest, ok := bytes.CutPrefix(content, []byte(joinPrefix))
	if !ok {
		return 0, nil, errors.New("not a join file of format 1")
	}
	fields := bytes.Split(rest, []byte{' '})
	slot, ok := ParseUint(fields[0])
	if !ok || len(fields) < 2 {
		return 0, nil, errors.New("want a slot and a configuration")
	}
	var cmds [][]byte
	for _, f := range fields[1:] {
		c, err := Unescape(nil, f)
		if err != nil {
			return 0, nil, err
		}
		cmds = append(cmds, c)
	}
	return slot, cmds, nil
}
