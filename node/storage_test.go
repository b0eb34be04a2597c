package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"synod/filestore"
	"synod/filestore/wal"
	"synod/paxos"
)

func testWALOptions() wal.Options {
	o := wal.DefaultOptions()
	o.SegmentBytes = 1 // a segment per batch
	return o
}

func openTestStorage(t *testing.T, dir string, opts wal.Options) (*storage, paxos.HardState, error) {
	t.Helper()
	st, hs, _, err := openStorage(dir, "c", 1, nil, opts, filestore.Options{}, zerolog.Nop())
	return st, hs, err
}

// voterDir makes a data directory of a voter that promised and accepted
// three batches, one log segment each.
func voterDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	st, hs, err := openTestStorage(t, dir, testWALOptions())
	if err != nil {
		t.Fatal(err)
	}
	if hs.Membership != paxos.Fresh {
		t.Fatalf("a new directory is %v, want fresh", hs.Membership)
	}
	b := paxos.Ballot{Round: 3, Node: 2}
	rds := []paxos.Ready{{PromiseChanged: true, Promise: b, MembershipChanged: true, Membership: paxos.Voter}}
	for slot := uint64(1); slot <= 3; slot++ {
		rds = append(rds, paxos.Ready{Committed: slot, Accepted: []paxos.Entry{{Slot: slot, Ballot: b, Value: paxos.Value{Kind: paxos.ValueNoop}}}})
	}
	for _, rd := range rds {
		if _, err := st.persist([]paxos.Ready{rd}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func segmentFiles(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "log", "*.log"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no segments in %s: %v", dir, err)
	}
	return files
}

// TestLostStateMakesALearner is issue 12.6: any missing piece of durable
// state is lost state, and the replica rejoins as a learner (trap 11).
func TestLostStateMakesALearner(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, dir string)
		want   paxos.Membership
	}{
		{"nothing lost", func(*testing.T, string) {}, paxos.Voter},
		{"the acceptor file", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "acceptor")) }, paxos.Learner},
		{"the log directory", func(t *testing.T, dir string) { os.RemoveAll(filepath.Join(dir, "log")) }, paxos.Learner},
		{"the newest segment", func(t *testing.T, dir string) {
			files := segmentFiles(t, dir)
			os.Remove(files[len(files)-1])
		}, paxos.Learner},
		{"a middle segment", func(t *testing.T, dir string) { os.Remove(segmentFiles(t, dir)[1]) }, paxos.Learner},
		{"the segment manifest", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "log", "SEGMENTS")) }, paxos.Learner},
		{"the snapshot the log was truncated behind", func(t *testing.T, dir string) {
			st, _, err := openTestStorage(t, dir, testWALOptions())
			if err != nil {
				t.Fatal(err)
			}
			if err := st.truncateBefore(3); err != nil { // as after a snapshot of slot 2, not kept
				t.Fatal(err)
			}
			st.close()
		}, paxos.Learner},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := voterDir(t)
			tc.damage(t, dir)
			st, hs, err := openTestStorage(t, dir, testWALOptions())
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			defer st.close()
			if hs.Membership != tc.want {
				t.Fatalf("membership %v, want %v", hs.Membership, tc.want)
			}
			acc, err := wal.ReadAcceptor(dir)
			if err != nil || acc.Membership != membershipToWAL(tc.want) {
				t.Fatalf("acceptor file %+v, %v: want membership %v recorded before anything else", acc, err, tc.want)
			}
			if tc.want == paxos.Voter && hs.Promise != (paxos.Ballot{Round: 3, Node: 2}) {
				t.Fatalf("promise %v, want 3.2", hs.Promise)
			}
		})
	}
}

// TestBitRotInLastBatchRefused is issue 12.7 at the node: a whole last
// batch that fails its checksum stops the node, and --repair makes it a
// learner.
func TestBitRotInLastBatchRefused(t *testing.T) {
	dir := voterDir(t)
	files := segmentFiles(t, dir)
	last := files[len(files)-1]
	data, err := os.ReadFile(last)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-12] ^= 0x01 // inside the last record's line
	if err := os.WriteFile(last, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := openTestStorage(t, dir, testWALOptions()); !errors.Is(err, wal.ErrCorrupt) {
		t.Fatalf("open = %v, want corruption refused", err)
	}
	repair := testWALOptions()
	repair.Repair = true
	st, hs, err := openTestStorage(t, dir, repair)
	if err != nil {
		t.Fatal(err)
	}
	st.close()
	if hs.Membership != paxos.Learner {
		t.Fatalf("repaired: %v, want learner", hs.Membership)
	}
}

// A failed fsync ends the replica (issue 12.5); a write refused for space is
// survived in place.
func TestStorageFailureKinds(t *testing.T) {
	for _, tc := range []struct {
		err  error
		full bool
	}{
		{fmt.Errorf("write: %w", errNoSpace), true},
		{fmt.Errorf("fsync: %w: %w", wal.ErrSync, errNoSpace), false},
		{fmt.Errorf("fsync: %w", wal.ErrSync), false},
		{errors.New("input/output error"), false},
	} {
		if got := diskFull(tc.err); got != tc.full {
			t.Errorf("diskFull(%v) = %v, want %v", tc.err, got, tc.full)
		}
	}
}

var errNoSpace = syscall.ENOSPC

// TestFailedFsyncEndsRun: after a failed fsync Run returns the error (the
// process exits and recovers from its files), never retries in place.
func TestFailedFsyncEndsRun(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ID, cfg.Dir, cfg.Listen = 1, t.TempDir(), "127.0.0.1:0"
	cfg.Peers = map[uint64]string{1: "127.0.0.1:1"}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- n.Run(context.Background()) }()
	n.failStorage(fmt.Errorf("fsync: %w", wal.ErrSync))
	select {
	case err := <-done:
		if !errors.Is(err, ErrStorage) || !errors.Is(err, wal.ErrSync) {
			t.Fatalf("Run = %v, want the storage failure", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run went on after a failed fsync")
	}
}
