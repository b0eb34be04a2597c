package filestore

// This file owns the manifest of a large file: the text a putfile command
// carries instead of the file's bytes (its size, chunk size, SHA-256 and
// chunk names), its encoding and its strict parser. Pure: the caller's
// goroutine (a proxy encodes it, the applier and the node's readers parse
// it).

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"

	"synod/filestore/chunks"
	"synod/filestore/wal"
)

// ErrBadManifest is returned by ParseManifest (and wrapped with
// ErrBadCommand by DecodeCommand for a putfile) when a manifest is not in
// the canonical form Manifest.Append writes or does not add up: a chunk
// count that does not match the size, a chunk size out of range.
var ErrBadManifest = errors.New("filestore: bad manifest")

// MinChunkSize bounds Manifest.ChunkSize from below (the upper bound is
// chunks.MaxSize).
const MinChunkSize = 4 << 10

// Manifest describes a large file whose bytes live in chunk files: chunk i
// holds bytes [i*ChunkSize, min((i+1)*ChunkSize, Size)). Its text form,
// one line of printable ASCII that the log and snapshots show as it is:
//
//	<size> <chunk-size> <sha256 of the whole file> <chunk 0 sha256>,<chunk 1 sha256>,...
type Manifest struct {
	Size      uint64
	ChunkSize uint64
	Sum       chunks.Sum // of the whole file
	Chunks    []chunks.Sum
}

// ChunkLen returns the length of chunk i.
func (m *Manifest) ChunkLen(i int) int {
	start := uint64(i) * m.ChunkSize
	return int(min(m.ChunkSize, m.Size-start))
}

// Append appends m's text form to dst.
func (m Manifest) Append(dst []byte) []byte {
	dst = strconv.AppendUint(dst, m.Size, 10)
	dst = append(dst, ' ')
	dst = strconv.AppendUint(dst, m.ChunkSize, 10)
	dst = append(dst, ' ')
	dst = m.Sum.AppendText(dst)
	dst = append(dst, ' ')
	for i, c := range m.Chunks {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = c.AppendText(dst)
	}
	return dst
}

// ParseManifest parses a manifest's text form. Only the canonical form is
// accepted (so it re-encodes to the same bytes); Size must be at least 1
// and the chunk list must have exactly ceil(Size/ChunkSize) names.
func ParseManifest(b []byte) (Manifest, error) {
	var m Manifest
	bad := func(what string) (Manifest, error) {
		return Manifest{}, fmt.Errorf("%w: %s", ErrBadManifest, what)
	}
	f, rest, ok := bytes.Cut(b, []byte{' '})
	if !ok {
		return bad("too few fields")
	}
	if m.Size, ok = wal.ParseUint(f); !ok || m.Size == 0 {
		return bad("bad size")
	}
	if f, rest, ok = bytes.Cut(rest, []byte{' '}); !ok {
		return bad("too few fields")
	}
	if m.ChunkSize, ok = wal.ParseUint(f); !ok || m.ChunkSize < MinChunkSize || m.ChunkSize > chunks.MaxSize {
		return bad(fmt.Sprintf("chunk size not in [%d, %d]", MinChunkSize, chunks.MaxSize))
	}
	if f, rest, ok = bytes.Cut(rest, []byte{' '}); !ok {
		return bad("too few fields")
	}
	var err error
	if m.Sum, err = chunks.ParseSum(f); err != nil {
		return bad(err.Error())
	}
	n := (m.Size-1)/m.ChunkSize + 1
	// Each name takes SumLen bytes and a comma: the length says how many
	// names there are before any is parsed, so a lying size allocates
	// nothing.
	if uint64(len(rest)+1) != n*(chunks.SumLen+1) {
		return bad(fmt.Sprintf("want %d chunk names for %d bytes", n, m.Size))
	}
	m.Chunks = make([]chunks.Sum, 0, n)
	for i := uint64(0); i < n; i++ {
		f := rest[i*(chunks.SumLen+1):]
		f = f[:chunks.SumLen]
		if i+1 < n && rest[(i+1)*(chunks.SumLen+1)-1] != ',' {
			return bad("chunk names must be separated by commas")
		}
		s, err := chunks.ParseSum(f)
		if err != nil {
			return bad(err.Error())
		}
		m.Chunks = append(m.Chunks, s)
	}
	return m, nil
}
