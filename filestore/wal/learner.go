package wal

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// learnerFile marks a replica that may not vote: "fresh" while it finds out
// whether its empty directory means a new cluster or a wiped replica,
// "learner" once it knows it forgot votes. The file is absent for a voter.
const learnerFile = "LEARNER"

// Learner marker states.
const (
	LearnerFresh = "fresh"
	LearnerWiped = "learner"
)

// WriteLearner records state (LearnerFresh or LearnerWiped) in dir's marker,
// replaced atomically.
func WriteLearner(dir, state string) error {
	if state != LearnerFresh && state != LearnerWiped {
		return fmt.Errorf("wal: learner state %q: %w", state, ErrInvalidRecord)
	}
	if err := writeFileAtomic(dir, learnerFile, []byte(state+"\n")); err != nil {
		return fmt.Errorf("wal: write learner marker: %w", err)
	}
	return nil
}

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
