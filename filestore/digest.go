package filestore

// This file owns the state machine's digest, maintained incrementally so
// that replicas can compare it often (Paxos Made Live checks the database
// through the log): each file and session contributes the SHA-256 of its
// content, summed modulo 2^256, which does not depend on order. Apply (the
// applier goroutine) only marks entries dirty; Digest hashes them, on any
// reader's goroutine under the node's read lock, serialized by digestMu.

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"math/bits"
)

// digestSum is a 256-bit accumulator, four little-endian limbs.
type digestSum [4]uint64

func (s *digestSum) add(h *[32]byte) {
	var c uint64
	for i := range s {
		s[i], c = bits.Add64(s[i], binary.LittleEndian.Uint64(h[8*i:]), c)
	}
}

func (s *digestSum) sub(h *[32]byte) {
	var b uint64
	for i := range s {
		s[i], b = bits.Sub64(s[i], binary.LittleEndian.Uint64(h[8*i:]), b)
	}
}

// tracked is the digest bookkeeping embedded in every file and session.
type tracked struct {
	sum     [32]byte // this entry's contribution, valid when counted
	counted bool     // sum is included in the machine's digestSum
	slot    int      // 1 + position in the dirty list, 0 when clean
}

// digestEntry is a file or a session.
type digestEntry interface {
	comparable
	track() *tracked
	entryHash(*entryHasher) [32]byte
}

// entryHasher is scratch space reused across entryHash calls.
type entryHasher struct {
	h   hash.Hash
	buf []byte
}

// dirtySet lists the entries whose contribution is stale.
type dirtySet[E digestEntry] struct {
	list []E
}

// mark records that e changed.
func (d *dirtySet[E]) mark(e E) {
	t := e.track()
	if t.slot == 0 {
		d.list = append(d.list, e)
		t.slot = len(d.list)
	}
}

// drop withdraws e, which is leaving the state, from the digest.
func (d *dirtySet[E]) drop(e E, sum *digestSum) {
	t := e.track()
	if t.counted {
		sum.sub(&t.sum)
		t.counted = false
	}
	if t.slot != 0 {
		// Swap-remove keeps the list no longer than the live entries.
		i, last := t.slot-1, len(d.list)-1
		d.list[i] = d.list[last]
		d.list[i].track().slot = i + 1
		var zero E
		d.list[last] = zero
		d.list = d.list[:last]
		t.slot = 0
	}
}

// flush brings every dirty entry's contribution up to date.
func (d *dirtySet[E]) flush(sum *digestSum, h *entryHasher) {
	var zero E
	for i, e := range d.list {
		t := e.track()
		if t.counted {
			sum.sub(&t.sum)
		}
		t.sum = e.entryHash(h)
		sum.add(&t.sum)
		t.counted, t.slot = true, 0
		d.list[i] = zero
	}
	d.list = d.list[:0]
}

func (f *file) track() *tracked { return &f.tracked }

// entryHash is SHA-256 over 'F' ('L' for a large file, whose value is
// its manifest), the key, version and value, each variable-length part
// prefixed with its length.
func (f *file) entryHash(h *entryHasher) [32]byte {
	tag := byte('F')
	if f.large {
		tag = 'L'
	}
	b := append(h.buf[:0], tag)
	b = binary.BigEndian.AppendUint64(b, uint64(len(f.key)))
	b = append(b, f.key...)
	b = binary.BigEndian.AppendUint64(b, f.version)
	b = binary.BigEndian.AppendUint64(b, uint64(len(f.value)))
	h.buf = b
	h.h.Reset()
	h.h.Write(b)
	h.h.Write(f.value)
	var out [32]byte
	h.h.Sum(out[:0])
	return out
}

func (s *session) track() *tracked { return &s.tracked }

// entryHash is SHA-256 over 'S', the session's client, last seq and
// activity time, then the number of replies held and each one.
func (s *session) entryHash(h *entryHasher) [32]byte {
	b := append(h.buf[:0], 'S')
	b = binary.BigEndian.AppendUint64(b, s.client)
	b = binary.BigEndian.AppendUint64(b, s.last)
	b = binary.BigEndian.AppendUint64(b, uint64(s.active))
	b = binary.BigEndian.AppendUint64(b, uint64(len(s.replies)))
	for _, r := range s.replies {
		b = append(b, byte(r.code))
		b = binary.BigEndian.AppendUint64(b, r.index)
		b = binary.BigEndian.AppendUint64(b, r.version)
	}
	h.buf = b
	return sha256.Sum256(b)
}

// Digest returns a hash of the whole replicated state, in hex: every file
// (key, version, value), every session, the applied index and the log
// time. Two machines have the same digest exactly when (barring SHA-256
// collisions) they hold the same state, so replicas can compare digests
// taken at the same Applied index. Its cost is proportional to what changed
// since the previous call, not to the size of the state, and nothing at all
// when no command was applied since: the result is kept, so a replica
// polled ten times a second hashes each change once.
//
// Digest only reads the replicated state; it updates caches of its own
// under a lock of its own. So it may run concurrently with the other
// read-only methods and with itself (under a sync.RWMutex's read lock), but
// not with Apply.
func (m *Machine) Digest() string {
	m.digestMu.Lock()
	defer m.digestMu.Unlock()
	if m.digestValid && m.digestAt == m.applied {
		return m.digest
	}
	if m.hasher.h == nil {
		m.hasher.h = sha256.New()
	}
	m.dirtyFiles.flush(&m.sum, &m.hasher)
	m.dirtySessions.flush(&m.sum, &m.hasher)
	var b [16 + 8 + 8 + 32]byte
	copy(b[:], "synod-digest-v2\x00")
	binary.BigEndian.PutUint64(b[16:], m.applied)
	binary.BigEndian.PutUint64(b[24:], uint64(m.logTime))
	for i, limb := range m.sum {
		binary.BigEndian.PutUint64(b[32+8*i:], limb)
	}
	h := sha256.Sum256(b[:])
	m.digest, m.digestAt, m.digestValid = hex.EncodeToString(h[:]), m.applied, true
	return m.digest
}
