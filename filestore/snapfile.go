package filestore

// This file owns snapshot files in a directory: their names, saving one
// durably, listing, loading the newest and pruning old ones. Stateless:
// the caller's goroutine (in a node, the snapshot goroutine saves and
// prunes, the fetch goroutine loads, New loads the newest, server
// goroutines list them to serve chunks; the offline commands too).

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ErrNoSnapshot is returned by LoadLatestSnapshot when the directory holds
// no snapshot.
var ErrNoSnapshot = errors.New("filestore: no snapshot")

const (
	snapSuffix = ".snap"
	slotDigits = 20 // enough for any uint64, so names sort like slots
	tempPrefix = ".snap-"
	tempSuffix = ".tmp"
)

// SnapshotPath returns the file a snapshot at slot is saved to in dir:
// <dir>/<slot, zero-padded to 20 digits>.snap.
func SnapshotPath(dir string, slot uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%0*d%s", slotDigits, slot, snapSuffix))
}

// SaveSnapshot writes m's state as the snapshot at meta.Slot into dir, which
// must exist, and returns its path. The snapshot appears atomically and
// durably: it is written to a temporary file, fsynced, renamed into place
// and the directory fsynced, so after a crash the path holds either the
// whole snapshot or nothing new. An existing snapshot of the same slot is
// replaced.
func SaveSnapshot(dir string, m *Machine, meta SnapshotMeta) (string, error) {
	path := SnapshotPath(dir, meta.Slot)
	tmp, err := os.CreateTemp(dir, tempPrefix+"*"+tempSuffix)
	if err != nil {
		return "", fmt.Errorf("filestore: save snapshot: %w", err)
	}
	err = m.WriteSnapshot(tmp, meta)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("filestore: save snapshot %s: %w", path, err)
	}
	if err := syncDir(dir); err != nil {
		return "", fmt.Errorf("filestore: save snapshot %s: %w", path, err)
	}
	return path, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// ListSnapshots returns the slots of the snapshots in dir, ascending.
// Other files, including temporaries of unfinished saves, are ignored.
func ListSnapshots(dir string) ([]uint64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("filestore: list snapshots: %w", err)
	}
	var slots []uint64
	for _, e := range entries {
		if slot, ok := parseSnapshotName(e.Name()); ok && e.Type().IsRegular() {
			slots = append(slots, slot)
		}
	}
	slices.Sort(slots)
	return slots, nil
}

func parseSnapshotName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, snapSuffix)
	if !ok || len(digits) != slotDigits {
		return 0, false
	}
	for _, c := range []byte(digits) {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	slot, err := strconv.ParseUint(digits, 10, 64)
	return slot, err == nil
}

// LoadSnapshot reads the snapshot file at path (see ReadSnapshot). A file
// whose name gives a slot other than its header's is corrupt.
func LoadSnapshot(path string, opts Options) (*Machine, SnapshotMeta, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, SnapshotMeta{}, fmt.Errorf("filestore: load snapshot: %w", err)
	}
	defer f.Close()
	m, meta, err := ReadSnapshot(f, opts)
	if err != nil {
		return nil, SnapshotMeta{}, fmt.Errorf("filestore: load snapshot %s: %w", path, err)
	}
	if slot, ok := parseSnapshotName(filepath.Base(path)); ok && slot != meta.Slot {
		return nil, SnapshotMeta{}, fmt.Errorf("filestore: load snapshot %s: %w", path,
			&SnapshotError{Line: 1, Reason: fmt.Sprintf("header says slot %d, the file name slot %d", meta.Slot, slot)})
	}
	return m, meta, nil
}

// LoadLatestSnapshot loads the snapshot of the highest slot in dir. It
// returns ErrNoSnapshot if there is none. If that snapshot is corrupt it
// returns the error rather than falling back to an older one: whether the
// log still reaches back far enough to replay from an older snapshot is
// the caller's call (ListSnapshots and LoadSnapshot let it make it).
func LoadLatestSnapshot(dir string, opts Options) (*Machine, SnapshotMeta, error) {
	slots, err := ListSnapshots(dir)
	if err != nil {
		return nil, SnapshotMeta{}, err
	}
	if len(slots) == 0 {
		return nil, SnapshotMeta{}, fmt.Errorf("%w in %s", ErrNoSnapshot, dir)
	}
	return LoadSnapshot(SnapshotPath(dir, slots[len(slots)-1]), opts)
}

// PruneSnapshots deletes all but the keep newest snapshots in dir (keep must
// be at least 1), and the temporaries that crashed saves left behind. It
// must not run concurrently with SaveSnapshot on the same directory.
func PruneSnapshots(dir string, keep int) error {
	if keep < 1 {
		return fmt.Errorf("filestore: prune snapshots: keep %d, must keep at least one", keep)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("filestore: prune snapshots: %w", err)
	}
	var slots []uint64
	var doomed []string
	for _, e := range entries {
		name := e.Name()
		if slot, ok := parseSnapshotName(name); ok && e.Type().IsRegular() {
			slots = append(slots, slot)
		} else if strings.HasPrefix(name, tempPrefix) && strings.HasSuffix(name, tempSuffix) {
			doomed = append(doomed, filepath.Join(dir, name))
		}
	}
	slices.Sort(slots)
	for _, slot := range slots[:max(0, len(slots)-keep)] {
		doomed = append(doomed, SnapshotPath(dir, slot))
	}
	if len(doomed) == 0 {
		return nil
	}
	for _, path := range doomed {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("filestore: prune snapshots: %w", err)
		}
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("filestore: prune snapshots: %w", err)
	}
	return nil
}
