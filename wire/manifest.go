package wire

// This file owns the manifest of a large file: what an OpPutFile request
// carries as its Value, and the state machine's putfile command after it,
// instead of the file's bytes (its size, chunk size, SHA-256 and chunk
// names): its text encoding and its strict parser. It lives in wire
// because the proxy writes it and the replicas read it. Pure: the
// caller's goroutine.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
)

// ErrBadManifest is returned by ParseManifest (and wrapped by filestore's
// DecodeCommand for a putfile) when a manifest is not in
// the canonical form Manifest.Append writes or does not add up: a chunk
// count that does not match the size, a chunk size out of range.
var ErrBadManifest = errors.New("filestore: bad manifest")

// Bounds of Manifest.ChunkSize, and the default. A chunk travels in one
// frame (MaxChunkSize is well below DefaultMaxFrame).
const (
	MinChunkSize     = 4 << 10
	MaxChunkSize     = 8 << 20
	DefaultChunkSize = 4 << 20
)

// ChunkSum is the SHA-256 of a chunk or of a whole file.
type ChunkSum [sha256.Size]byte

// SumOf returns the ChunkSum of b.
func SumOf(b []byte) ChunkSum { return sha256.Sum256(b) }

// String returns s as 64 lowercase hex digits.
func (s ChunkSum) String() string { return hex.EncodeToString(s[:]) }

// sumLen is the length of a ChunkSum's text.
const sumLen = 2 * sha256.Size

// ParseChunkSum parses 64 lowercase hex digits.
func ParseChunkSum(b []byte) (ChunkSum, bool) {
	var s ChunkSum
	if len(b) != sumLen {
		return s, false
	}
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return s, false
		}
	}
	_, err := hex.Decode(s[:], b)
	return s, err == nil
}

// Manifest describes a large file whose bytes live in chunk files: chunk i
// holds bytes [i*ChunkSize, min((i+1)*ChunkSize, Size)). Its text form,
// one line of printable ASCII that the log and snapshots show as it is:
//
//	<size> <chunk-size> <sha256 of the whole file> <chunk 0 sha256>,<chunk 1 sha256>,...
type Manifest struct {
	Size      uint64
	ChunkSize uint64
	Sum       ChunkSum // of the whole file
	Chunks    []ChunkSum
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
	dst = hex.AppendEncode(dst, m.Sum[:])
	dst = append(dst, ' ')
	for i, c := range m.Chunks {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = hex.AppendEncode(dst, c[:])
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
	if m.Size, ok = parseCanonicalUint(f); !ok || m.Size == 0 {
		return bad("bad size")
	}
	if f, rest, ok = bytes.Cut(rest, []byte{' '}); !ok {
		return bad("too few fields")
	}
	if m.ChunkSize, ok = parseCanonicalUint(f); !ok || m.ChunkSize < MinChunkSize || m.ChunkSize > MaxChunkSize {
		return bad(fmt.Sprintf("chunk size not in [%d, %d]", MinChunkSize, MaxChunkSize))
	}
	if f, rest, ok = bytes.Cut(rest, []byte{' '}); !ok {
		return bad("too few fields")
	}
	if m.Sum, ok = ParseChunkSum(f); !ok {
		return bad("the file's sha256 is not 64 lowercase hex digits")
	}
	n := (m.Size-1)/m.ChunkSize + 1
	// Each name takes SumLen bytes and a comma: the length says how many
	// names there are before any is parsed, so a lying size allocates
	// nothing.
	if uint64(len(rest)+1) != n*(sumLen+1) {
		return bad(fmt.Sprintf("want %d chunk names for %d bytes", n, m.Size))
	}
	m.Chunks = make([]ChunkSum, 0, n)
	for i := uint64(0); i < n; i++ {
		f := rest[i*(sumLen+1):]
		f = f[:sumLen]
		if i+1 < n && rest[(i+1)*(sumLen+1)-1] != ',' {
			return bad("chunk names must be separated by commas")
		}
		s, ok := ParseChunkSum(f)
		if !ok {
			return bad(fmt.Sprintf("chunk %d's sha256 is not 64 lowercase hex digits", i))
		}
		m.Chunks = append(m.Chunks, s)
	}
	return m, nil
}

// parseCanonicalUint parses decimal digits without sign or leading zeros
// (but "0"), within uint64.
func parseCanonicalUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 1 && b[0] == '0' {
		return 0, false
	}
	n, err := strconv.ParseUint(string(b), 10, 64)
	return n, err == nil
}
