package wal

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestLearnerMarker(t *testing.T) {
	dir := t.TempDir()
	if st, err := ReadLearner(dir); err != nil || st != "" {
		t.Fatalf("no marker: got %q, %v", st, err)
	}
	for _, state := range []string{LearnerFresh, LearnerWiped} {
		writeFile(t, filepath.Join(dir, learnerFile), []byte(state+"\n")) // as format 1 wrote it
		if st, err := ReadLearner(dir); err != nil || st != state {
			t.Fatalf("wrote %q, read %q, %v", state, st, err)
		}
	}
	if err := RemoveLearner(dir); err != nil {
		t.Fatal(err)
	}
	if st, err := ReadLearner(dir); err != nil || st != "" {
		t.Fatalf("after remove: got %q, %v", st, err)
	}
	if err := RemoveLearner(dir); err != nil {
		t.Fatalf("removing twice: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, learnerFile), []byte("maybe\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var ce *CorruptError
	if _, err := ReadLearner(dir); !errors.As(err, &ce) {
		t.Fatalf("garbage marker: %v", err)
	}
}
