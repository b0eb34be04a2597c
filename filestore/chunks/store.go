// Package chunks stores the pieces of large files on one replica's disk:
// each chunk is a plain file in one directory, named by the lowercase hex
// SHA-256 of its bytes, so `cat` shows it and `sha256sum` checks it.
//
// This file owns the Store and the chunk names (Sum). A Store is safe for
// concurrent use: the node's client goroutines write chunks the proxy
// streams in (Put) and read them for range reads and for peers that lack
// them (Read), and the node's garbage collector lists them (Each) and
// removes the ones no file needs (RemoveIfOlder); nothing is cached in
// memory.
//
// A chunk's modification time is the last time it was stored: Put of a
// chunk already present sets it to now, so an upload that shares a chunk
// with an old file makes it young again, and the collector, which removes
// only chunks older than its grace, cannot remove a chunk an upload was
// just told is stored (Put's touch and RemoveIfOlder's check and unlink
// are one step under the Store's lock).
//
// SHA-256 (crypto/sha256) rather than a BLAKE hash: it is the only
// collision-resistant hash of the standard library with assembly on amd64
// and arm64 (SHA-NI, ARMv8 crypto extensions run it at 1.5-2 GB/s a core),
// sha256sum is on every machine, and the state machine's digest already
// uses it. A chunk's name is its checksum, so a chunk is verified against
// its name on every read and a damaged one is never served.
//
// Durability: Put writes a temporary file (".tmp-" prefix), fsyncs it,
// renames it to its name and fsyncs the directory before it returns, so a
// chunk Put acknowledged survives a power cut. Open removes temporary
// files a crash left behind; a chunk file is either absent or whole.
package chunks

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// DefaultSize is the default chunk size, 4 MiB: large enough that an
// fsync per chunk costs little next to its bytes, small enough to fit a
// wire frame (16 MiB) with room to spare.
const DefaultSize = 4 << 20

// MaxSize bounds a chunk: a chunk travels in one wire frame.
const MaxSize = 8 << 20

// tmpPrefix starts the name of a chunk being written.
const tmpPrefix = ".tmp-"

var (
	// ErrNotFound is returned by Read when the store holds no chunk of
	// that name.
	ErrNotFound = errors.New("chunks: no such chunk")
	// ErrChecksum is returned by Put when the bytes do not hash to the
	// name they came with, and by Read when a stored chunk no longer
	// hashes to its name (damage on disk: the chunk must be fetched
	// again from a peer).
	ErrChecksum = errors.New("chunks: checksum mismatch")
	// ErrTooLarge is returned by Put and Read for a chunk over MaxSize
	// bytes (or the caller's bound).
	ErrTooLarge = errors.New("chunks: chunk too large")
	// ErrBadSum is returned by ParseSum for text that is not 64
	// lowercase hex digits.
	ErrBadSum = errors.New("chunks: bad checksum")
)

// Sum is a chunk's SHA-256, and so its name.
type Sum [sha256.Size]byte

// Of returns the Sum of b.
func Of(b []byte) Sum { return sha256.Sum256(b) }

// String returns s as 64 lowercase hex digits, the chunk's file name.
func (s Sum) String() string { return hex.EncodeToString(s[:]) }

// AppendText appends s's hex form to dst.
func (s Sum) AppendText(dst []byte) []byte { return hex.AppendEncode(dst, s[:]) }

// SumLen is the length of a Sum's text.
const SumLen = 2 * sha256.Size

// ParseSum parses the text String writes; only lowercase hex is accepted,
// so a name has one spelling.
func ParseSum(b []byte) (Sum, error) {
	var s Sum
	if len(b) != SumLen {
		return s, fmt.Errorf("%w: want %d hex digits, got %d bytes", ErrBadSum, SumLen, len(b))
	}
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return s, fmt.Errorf("%w: %q is not lowercase hex", ErrBadSum, b)
		}
	}
	if _, err := hex.Decode(s[:], b); err != nil {
		return s, fmt.Errorf("%w: %v", ErrBadSum, err)
	}
	return s, nil
}

// Store is a directory of chunk files.
type Store struct {
	dir string
	// mu makes a chunk's existence check and touch in Put, its rename into
	// place, and RemoveIfOlder's age check and unlink each one step.
	mu sync.Mutex
}

// Open returns the store in dir, creating the directory if needed and
// removing temporary files a crash left behind.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("chunks: open %s: %w", dir, err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("chunks: open %s: %w", dir, err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("chunks: open %s: remove leftover %s: %w", dir, e.Name(), err)
			}
		}
	}
	return &Store{dir: dir}, nil
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

// Path returns the file that holds (or would hold) the chunk sum.
func (s *Store) Path(sum Sum) string { return filepath.Join(s.dir, sum.String()) }

// Has reports whether a chunk file of that name exists (it is verified
// only when read).
func (s *Store) Has(sum Sum) bool {
	_, err := os.Stat(s.Path(sum))
	return err == nil
}

// HeldDurably reports, for each sum, whether its chunk file exists, and
// makes sure that what it reports survives a crash: a chunk whose rename
// another Put made but whose directory it has not fsynced yet is
// counted only after this fsyncs the directory itself (once, whatever the
// number of sums).
func (s *Store) HeldDurably(sums []Sum) ([]bool, error) {
	held := make([]bool, len(sums))
	any := false
	for i, sum := range sums {
		if _, err := os.Stat(s.Path(sum)); err == nil {
			held[i], any = true, true
		}
	}
	if any {
		if err := syncDir(s.dir); err != nil {
			return nil, fmt.Errorf("chunks: held: %w", err)
		}
	}
	return held, nil
}

// Put stores data as the chunk sum, durably, and returns once it is on
// disk (file and directory fsynced). The bytes must hash to sum
// (ErrChecksum otherwise) and be at most MaxSize long (ErrTooLarge). A
// chunk already present is left as it is: the same name means the same
// bytes. Concurrent Puts of one chunk are safe: each writes its own
// temporary file and the renames replace equal bytes with equal bytes.
func (s *Store) Put(sum Sum, data []byte) error {
	if len(data) > MaxSize {
		return fmt.Errorf("chunks: put %s: %w: %d bytes over %d", sum, ErrTooLarge, len(data), MaxSize)
	}
	if Of(data) != sum {
		return fmt.Errorf("chunks: put %s: %w", sum, ErrChecksum)
	}
	if ok, err := s.touch(sum); err != nil || ok {
		return err
	}
	tmp, err := os.CreateTemp(s.dir, tmpPrefix+sum.String()[:16]+"-*")
	if err != nil {
		return fmt.Errorf("chunks: put %s: %w", sum, err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("chunks: put %s: %w", sum, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("chunks: put %s: fsync: %w", sum, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("chunks: put %s: %w", sum, err)
	}
	s.mu.Lock()
	err = os.Rename(tmp.Name(), s.Path(sum))
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("chunks: put %s: %w", sum, err)
	}
	ok = true
	if err := syncDir(s.dir); err != nil {
		return fmt.Errorf("chunks: put %s: %w", sum, err)
	}
	return nil
}

// Read returns the chunk sum's bytes, verified against its name. maxLen
// bounds what it will read (at most MaxSize; 0 means MaxSize): a longer
// file is ErrTooLarge. A missing chunk is ErrNotFound, a damaged one
// ErrChecksum.
func (s *Store) Read(sum Sum, maxLen int) ([]byte, error) {
	if maxLen <= 0 || maxLen > MaxSize {
		maxLen = MaxSize
	}
	f, err := os.Open(s.Path(sum))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("chunks: read %s: %w", sum, ErrNotFound)
		}
		return nil, fmt.Errorf("chunks: read %s: %w", sum, err)
	}
	defer f.Close()
	var buf bytes.Buffer
	if fi, err := f.Stat(); err == nil && fi.Size() <= int64(maxLen) {
		buf.Grow(int(fi.Size()) + 1)
	}
	n, err := buf.ReadFrom(io.LimitReader(f, int64(maxLen)+1))
	if err != nil {
		return nil, fmt.Errorf("chunks: read %s: %w", sum, err)
	}
	if n > int64(maxLen) {
		return nil, fmt.Errorf("chunks: read %s: %w: over %d bytes", sum, ErrTooLarge, maxLen)
	}
	data := buf.Bytes()
	if Of(data) != sum {
		return nil, fmt.Errorf("chunks: read %s: %w: the file is damaged", sum, ErrChecksum)
	}
	return data, nil
}

// touch sets the modification time of the chunk sum to now if it exists,
// and reports whether it did.
func (s *Store) touch(sum Sum) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	err := os.Chtimes(s.Path(sum), now, now)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("chunks: put %s: refresh its age: %w", sum, err)
	}
	return true, nil
}

// Info is what Each tells of one stored chunk.
type Info struct {
	Sum     Sum
	Size    int64
	ModTime time.Time // when it was last stored
}

// Each calls fn for every chunk file in the store, in name order, until fn
// returns false. Temporary files and files whose names are not chunk names
// are skipped; a chunk removed while Each runs may or may not be seen.
func (s *Store) Each(fn func(Info) bool) error {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("chunks: list %s: %w", s.dir, err)
	}
	for _, e := range ents {
		sum, err := ParseSum([]byte(e.Name()))
		if err != nil || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("chunks: list %s: %w", s.dir, err)
		}
		if !fn(Info{Sum: sum, Size: fi.Size(), ModTime: fi.ModTime()}) {
			return nil
		}
	}
	return nil
}

// RemoveIfOlder removes the chunk sum if it was last stored before cutoff,
// and reports whether it did; a missing chunk is no error. The check and
// the unlink are one step against Put, so a chunk Put just stored or
// touched is never removed. The directory is not fsynced: a removal a
// crash undoes leaves a chunk the next collection removes again.
func (s *Store) RemoveIfOlder(sum Sum, cutoff time.Time) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fi, err := os.Stat(s.Path(sum))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("chunks: remove %s: %w", sum, err)
	case !fi.ModTime().Before(cutoff):
		return false, nil
	}
	if err := os.Remove(s.Path(sum)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("chunks: remove %s: %w", sum, err)
	}
	return true, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}
