package wal

// This file owns the acceptor file, the promised ballot and membership in
// one checksummed line, and the atomic small-file writes the other files
// share. Stateless: the caller's goroutine (in a node, New and Run open
// and probe it, the persister rewrites it; check reads it, restore writes
// it).

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// The acceptor file holds the replica's durable acceptor state as one line:
//
//	synod-acceptor 2 <round>.<node> <membership> <crc>
//
// membership is "voter", "fresh" or "learner"; crc is the CRC-32C of the
// bytes before its space, 8 lower-case hex digits; the 2 is the format
// version. Promise and membership live in one file so that losing it is
// noticed: a data directory with an IDENTITY always has an acceptor file
// (written before the IDENTITY), and a replica that finds it missing
// forgot its promise and rejoins as a learner. Format 1 ("synod-acceptor 1
// <ballot> <crc>", its membership in a LEARNER marker file) is read for
// migration and never written.
const (
	acceptorFile    = "acceptor"
	acceptorPrefix  = "synod-acceptor 2 "
	acceptorPrefix1 = "synod-acceptor 1 "
	// maxSmallFile bounds what ReadAcceptor and ReadIdentity read: both
	// files are one short line.
	maxSmallFile = 4 << 10
)

// Memberships the acceptor file records.
const (
	MemberVoter   = "voter"
	MemberFresh   = "fresh"   // a new directory: not voting until the peers say the cluster is new
	MemberLearner = "learner" // it may have forgotten votes: not voting until that cannot matter
)

// AcceptorState is what the acceptor file holds.
type AcceptorState struct {
	Promise Ballot
	// Membership is MemberVoter, MemberFresh or MemberLearner; ReadAcceptor
	// leaves it empty for a format 1 file, whose membership is the LEARNER
	// marker's (ReadLearner).
	Membership string
}

// WriteAcceptor durably replaces <dir>/acceptor with st: it writes a
// temporary file, fsyncs it, renames it over the old one and fsyncs dir, so
// a crash leaves either the old or the new state, never a mix. It must
// return before the acceptor answers a Prepare. Calls for the same dir must
// not overlap.
func WriteAcceptor(dir string, st AcceptorState) error {
	switch st.Membership {
	case MemberVoter, MemberFresh, MemberLearner:
	default:
		return fmt.Errorf("wal: write acceptor: membership %q: %w", st.Membership, ErrInvalidRecord)
	}
	line := st.Promise.append([]byte(acceptorPrefix))
	line = append(line, ' ')
	line = appendCRC(append(line, st.Membership...), 0)
	if err := writeFileAtomic(dir, acceptorFile, line); err != nil {
		return fmt.Errorf("wal: write acceptor: %w", err)
	}
	return nil
}

// ReadAcceptor returns the state stored by WriteAcceptor in dir. If there
// is no acceptor file it returns an error for which errors.Is(err,
// fs.ErrNotExist) holds. A damaged file is a *CorruptError.
func ReadAcceptor(dir string) (AcceptorState, error) {
	path := filepath.Join(dir, acceptorFile)
	data, err := readSmallFile(path)
	if err != nil {
		return AcceptorState{}, fmt.Errorf("wal: read acceptor: %w", err)
	}
	st, err := parseAcceptor(data)
	if err != nil {
		return AcceptorState{}, &CorruptError{File: path, Line: 1, Reason: err.Error()}
	}
	return st, nil
}

func parseAcceptor(data []byte) (AcceptorState, error) {
	content, err := checkLineCRC(data)
	if err != nil {
		return AcceptorState{}, err
	}
	if rest, ok := bytes.CutPrefix(content, []byte(acceptorPrefix1)); ok {
		b, ok := parseBallot(rest)
		if !ok {
			return AcceptorState{}, errors.New("bad ballot")
		}
		return AcceptorState{Promise: b}, nil
	}
	rest, ok := bytes.CutPrefix(content, []byte(acceptorPrefix))
	if !ok {
		return AcceptorState{}, errors.New("not an acceptor file of format 2")
	}
	ballot, member, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		return AcceptorState{}, errors.New("no membership")
	}
	b, ok := parseBallot(ballot)
	if !ok {
		return AcceptorState{}, errors.New("bad ballot")
	}
	st := AcceptorState{Promise: b, Membership: string(member)}
	switch st.Membership {
	case MemberVoter, MemberFresh, MemberLearner:
	default:
		return AcceptorState{}, fmt.Errorf("unknown membership %q", member)
	}
	return st, nil
}

// readSmallFile reads a file that must be at most maxSmallFile bytes.
func readSmallFile(path string) ([]byte, error) { return readLimited(path, maxSmallFile) }

// readLimited reads a file that must be at most limit bytes; a larger one
// is a *CorruptError.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, &CorruptError{File: path, Line: 1, Reason: fmt.Sprintf("file larger than %d bytes", limit)}
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
		return fmt.Errorf("%w: %w", ErrSync, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	return syncDir(dir)
}
