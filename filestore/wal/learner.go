package wal

// This file owns format 1's LEARNER marker, read only to migrate a data
// directory to format 2 and then removed. Stateless: the caller's
// goroutine (a node's New, the offline commands).

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// learnerFile is format 1's marker of a replica that may not vote: "fresh"
// while it found out whether its empty directory meant a new cluster or a
// wiped replica, "learner" once it knew it forgot votes; absent for a voter.
// Format 2 keeps membership in the acceptor file; the marker is only read,
// to migrate a directory of format 1, then removed.
const learnerFile = "LEARNER"

// Learner marker states of format 1.
const (
	LearnerFresh = "fresh"
	LearnerWiped = "learner"
)

// ReadLearner returns dir's marker state, "" if there is none (a voter).
// Anything but a known state is a *CorruptError.
func ReadLearner(dir string) (string, error) {
	path := filepath.Join(dir, learnerFile)
	data, err := readSmallFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("wal: read learner marker: %w", err)
	}
	state := strings.TrimSuffix(string(data), "\n")
	if state != LearnerFresh && state != LearnerWiped {
		return "", &CorruptError{File: path, Line: 1, Reason: fmt.Sprintf("unknown learner state %q", state)}
	}
	return state, nil
}

// RemoveLearner deletes dir's marker durably: the replica votes from now on.
func RemoveLearner(dir string) error {
	if err := os.Remove(filepath.Join(dir, learnerFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("wal: remove learner marker: %w", err)
	}
	return syncDir(dir)
}
