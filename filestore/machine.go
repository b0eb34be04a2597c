package filestore

// This file owns the Machine, the replicated file state machine, with its
// Options and Results: Apply, the session rules it enforces, and the
// read-only queries. Not safe for concurrent use: the node's applier
// goroutine alone calls Apply, under the write lock; server goroutines
// read under the read lock; the offline commands use it on their own.

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"synod/wire"
)

// Limits and defaults of Options.
const (
	// DefaultMaxValue is the default Options.MaxValue, 1 MiB.
	DefaultMaxValue = 1 << 20
	// DefaultSessionTTL is the default Options.SessionTTL.
	DefaultSessionTTL = time.Hour
	// DefaultMaxSessions is the default Options.MaxSessions.
	DefaultMaxSessions = 100_000
	// DefaultSessionWindow is the default Options.SessionWindow. A proxy
	// keeps at most this many writes of one session unresolved (see
	// wire.MaxSessionWindow, which must not exceed it).
	DefaultSessionWindow = 1024
	// MaxSessionWindow bounds Options.SessionWindow.
	MaxSessionWindow = 1 << 16
	// MaxValueLimit bounds Options.MaxValue: a snapshot line holds an
	// escaped value (up to four bytes per byte) and readers must be able
	// to buffer one line.
	MaxValueLimit = 64 << 20
)

// ErrInvalidOptions is returned by Options.Validate for a negative field or
// a MaxValue above MaxValueLimit.
var ErrInvalidOptions = errors.New("filestore: invalid options")

// Options shape the state machine. They are part of its definition: every
// replica of a cluster must run with the same Options, or the same log
// could yield different states (a value too large here, a session expired
// there). A zero field takes its default.
type Options struct {
	// MaxValue is the largest value a file may hold, in bytes; a write
	// that would exceed it (an APPEND included) fails with wire.CodeTooLarge.
	// Default 1 MiB, at most MaxValueLimit.
	MaxValue int
	// SessionTTL is how long, in log time, a client's session outlives
	// the client's last command. Counted in whole milliseconds (the unit
	// of command stamps), at least 1 ms. Default 1 hour. Log time is made
	// of masters' wall clocks, so a clock running ahead expires sessions
	// early; that costs refusals (wire.CodeSessionUnknown), never a write
	// applied twice.
	SessionTTL time.Duration
	// MaxSessions bounds the session table; a new session past it evicts
	// the least recently active one, whose later writes are then refused
	// like those of an expired session. Default 100,000.
	MaxSessions int
	// SessionWindow bounds the replies a session keeps for retries: a
	// client (a proxy connection) must not have more writes of one
	// session unresolved. Past it the oldest reply is forgotten, and a
	// retry of that write gets wire.CodeAnswered. Default 1024, at most
	// MaxSessionWindow.
	SessionWindow int
}

// DefaultOptions returns the options a zero Options stands for.
func DefaultOptions() Options {
	return Options{
		MaxValue:      DefaultMaxValue,
		SessionTTL:    DefaultSessionTTL,
		MaxSessions:   DefaultMaxSessions,
		SessionWindow: DefaultSessionWindow,
	}
}

// Validate returns an error wrapping ErrInvalidOptions if a field is out of
// range. Zero fields are valid: they mean the default.
func (o Options) Validate() error {
	switch {
	case o.MaxValue < 0 || o.MaxValue > MaxValueLimit:
		return fmt.Errorf("%w: MaxValue %d not in [0, %d]", ErrInvalidOptions, o.MaxValue, MaxValueLimit)
	case o.SessionTTL < 0:
		return fmt.Errorf("%w: negative SessionTTL %v", ErrInvalidOptions, o.SessionTTL)
	case o.MaxSessions < 0:
		return fmt.Errorf("%w: negative MaxSessions %d", ErrInvalidOptions, o.MaxSessions)
	case o.SessionWindow < 0 || o.SessionWindow > MaxSessionWindow:
		return fmt.Errorf("%w: SessionWindow %d not in [0, %d]", ErrInvalidOptions, o.SessionWindow, MaxSessionWindow)
	}
	return nil
}

func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.MaxValue == 0 {
		o.MaxValue = d.MaxValue
	}
	if o.SessionTTL == 0 {
		o.SessionTTL = d.SessionTTL
	}
	if o.MaxSessions == 0 {
		o.MaxSessions = d.MaxSessions
	}
	if o.SessionWindow == 0 {
		o.SessionWindow = d.SessionWindow
	}
	return o
}

// ErrStale is the Err of the result of a version 1 (Legacy) command whose
// seq is below its client's last one: not applied now; whether its first
// attempt was is unknown here.
var ErrStale = errors.New("filestore: sequence number older than the client's last write")

// Result is what applying one command produced; the node turns it into the
// client's reply.
//
// Its code is the wire protocol's (one vocabulary from the state machine to
// the client). wire.CodeOK, wire.CodeNotFound, wire.CodeConflict and wire.CodeTooLarge are
// the outcomes of a write that was applied: they are remembered in the
// client's session and replayed to a retry (wire.CodeTooLarge changed nothing,
// and still counts). The others say the command was not applied now, and
// are never remembered: CodeBadRequest (Err says why: ErrBadCommand, or
// ErrStale for an old Legacy duplicate), wire.CodeOutOfOrder (the command's seq
// is beyond the one its session applies next: send again, in order),
// wire.CodeSessionUnknown (the session is not in the table, expired, evicted or
// never created, and the command cannot start one: its seq is above 1 or
// it is a retry, whose first attempt may have been applied under the lost
// session), and wire.CodeAnswered (a retry of a write that was applied, whose
// reply the session no longer holds because the client acknowledged it;
// not applied again, and its outcome cannot be repeated).
type Result struct {
	Code wire.Code
	// Index is the position of the command that produced this result.
	// A retry answered from the session cache carries the original
	// command's index, so it is the same reply the first attempt got.
	Index uint64
	// Version is the file's version after the command: the new version
	// (= Index) after a successful PUT, APPEND or CAS, 0 after DEL or
	// when the file does not exist, and the unchanged current version
	// for wire.CodeConflict and wire.CodeTooLarge.
	Version uint64
	// Err is set only with CodeBadRequest: it wraps ErrBadCommand, or is
	// ErrStale.
	Err error
}

// file is one stored file. value is never written within its length once
// stored (PUT replaces the slice, APPEND writes past the end), so slices
// handed out by Get stay valid and unchanged.
//
// A large file (large set) holds its manifest as value (wire.Manifest) and
// its bytes in chunk files; size is its length in bytes.
type file struct {
	key     string
	value   []byte
	version uint64
	large   bool
	size    uint64
	tracked
}

// Machine is the replicated file state machine: files with versions, and
// the client-session table that makes retried writes apply once. Feeding
// two Machines built with the same Options the same commands at the same
// indices leaves them in the same state with the same Digest.
//
// A Machine is not safe for concurrent use. Apply modifies it and needs
// exclusive access; Digest, Get, Stat, List, Len, Sessions, Applied,
// LogTime, Clone and WriteSnapshot only read and may run concurrently with
// each other (so the node can guard a Machine with a sync.RWMutex, and
// answer STATUS under the read lock).
type Machine struct {
	opts  Options
	ttlMs uint64

	files      map[string]*file
	keys       keyIndex
	valueBytes int64

	sessions map[uint64]*session
	byActive sessionHeap
	applied  uint64
	logTime  int64 // largest command stamp applied, ms
	sum      digestSum
	// The digest's bookkeeping, under digestMu: Apply marks entries dirty
	// (with exclusive access), Digest and Clone take the lock.
	digestMu      sync.Mutex
	dirtyFiles    dirtySet[*file]
	dirtySessions dirtySet[*session]
	hasher        entryHasher
	digest        string // the last Digest, valid while digestValid and digestAt == applied
	digestAt      uint64
	digestValid   bool
}

// New returns an empty Machine. Zero fields of opts take their defaults. It
// panics if opts.Validate fails: check options that come from users first.
func New(opts Options) *Machine {
	if err := opts.Validate(); err != nil {
		panic(err)
	}
	opts = opts.withDefaults()
	ttl := opts.SessionTTL.Milliseconds()
	if ttl < 1 {
		ttl = 1
	}
	return &Machine{
		opts:     opts,
		ttlMs:    uint64(ttl),
		files:    make(map[string]*file),
		sessions: make(map[uint64]*session),
	}
}

// Apply applies the command at position index of the global command
// sequence and returns its result. index must be Applied()+1: commands are
// applied strictly in order, each exactly once, and anything else is a bug
// in the caller that would silently fork this replica, so Apply panics on
// it. The command's bytes are never a reason to panic: an undecodable
// command yields CodeBadRequest with ErrBadCommand and changes nothing but Applied. Apply does
// not retain cmd.
//
// A command with a client id belongs to that client's session, whose writes
// apply in seq order, each once (the package comment gives the rules): seq
// last+1 applies; an older seq gets the reply it got the first time
// (wire.CodeAnswered if that reply was acknowledged and forgotten); a later seq
// is refused (wire.CodeOutOfOrder). A command whose session is not in the table
// applies only if it can start one: seq 1, not marked as a retry; anything
// else is refused (wire.CodeSessionUnknown). So losing a session, to expiry or
// eviction, costs refusals, never a second application.
func (m *Machine) Apply(index uint64, cmd []byte) Result {
	return m.apply(index, cmd, nil)
}

// Change is what one applied command did to the files, for watchers: the
// key it changed, how, and the bytes involved. Its slices share memory
// with the Machine's files, which never write within a stored value's
// length (see file), so they stay valid and unchanged; nobody may write
// to them.
type Change struct {
	// Op is wire.OpPut (a PUT or a CAS that swapped), wire.OpAppend or
	// wire.OpDel; 0 when the command changed no file (a refused, failed
	// or duplicate write).
	Op  wire.Op
	Key string
	// Value is the file's new value after a PUT (a large file's
	// manifest after a PUTFILE, reported as a PUT), the bytes appended
	// after an APPEND, and nil after a DEL.
	Value []byte
	// Prev is the file's value before the command, and HadPrev whether
	// the file existed.
	Prev    []byte
	HadPrev bool
}

// ApplyChange is Apply that also reports the change the command made.
func (m *Machine) ApplyChange(index uint64, cmd []byte) (Result, Change) {
	var ch Change
	r := m.apply(index, cmd, &ch)
	return r, ch
}

func (m *Machine) apply(index uint64, cmd []byte, ch *Change) Result {
	if index != m.applied+1 {
		panic(fmt.Sprintf("filestore: Apply(%d) after %d: commands must be applied in order", index, m.applied))
	}
	m.applied = index
	c, err := parseCommand(cmd)
	if err != nil {
		return Result{Code: wire.CodeBadRequest, Index: index, Err: err}
	}
	if c.stamp > m.logTime {
		m.logTime = c.stamp
	}
	m.expireSessions()
	if c.client == 0 {
		return m.exec(index, &c, ch)
	}
	s := m.sessions[c.client]
	if c.legacy {
		return m.applyLegacy(index, &c, s, ch)
	}
	if s == nil {
		if c.seq != 1 || c.retry {
			return Result{Code: wire.CodeSessionUnknown, Index: index}
		}
	} else {
		m.touch(s)
		// Ack only ever tells the truth (the client holds those
		// replies), whichever command carries it and in whatever order
		// its commands are chosen.
		s.forget(c.ack, m.opts.SessionWindow)
		switch {
		case c.seq <= s.last:
			if r, ok := s.reply(c.seq); ok {
				return r
			}
			return Result{Code: wire.CodeAnswered, Index: index}
		case c.seq > s.last+1:
			return Result{Code: wire.CodeOutOfOrder, Index: index}
		}
	}
	r := m.exec(index, &c, ch)
	m.remember(s, c.client, c.seq, c.ack, r)
	return r
}

// applyLegacy applies a version 1 command by the rule it was written
// under, so that a log from before sessions were ordered replays to the
// state it produced then: a seq at or below the session's last is a
// duplicate (the last one answered from the cache, older ones ErrStale),
// any later seq applies, and a missing session is created.
func (m *Machine) applyLegacy(index uint64, c *commandView, s *session, ch *Change) Result {
	if s != nil && c.seq <= s.last {
		m.touch(s)
		if c.seq == s.last {
			if r, ok := s.reply(c.seq); ok {
				return r
			}
		}
		return Result{Code: wire.CodeBadRequest, Index: index, Err: ErrStale}
	}
	r := m.exec(index, c, ch)
	m.remember(s, c.client, c.seq, c.seq, r)
	return r
}

// exec performs the write itself, and describes it in ch if ch is not nil.
func (m *Machine) exec(index uint64, c *commandView, ch *Change) Result {
	f := m.files[string(c.key)]
	var cur uint64
	if f != nil {
		cur = f.version
	}
	if ch != nil {
		if f != nil {
			ch.Key, ch.Prev, ch.HadPrev = f.key, f.value[:len(f.value):len(f.value)], true
		}
		r := m.exec(index, c, nil)
		if r.Code != wire.CodeOK {
			*ch = Change{}
			return r
		}
		ch.Op = c.op
		switch c.op {
		case wire.OpPut, wire.OpCAS:
			nf := m.files[string(c.key)]
			ch.Op, ch.Key, ch.Value = wire.OpPut, nf.key, nf.value
		case wire.OpPutFile, wire.OpCASFile:
			// A watch tells PUT, APPEND and DEL only: a large file is a
			// PUT of its manifest (size, chunk size, SHA-256, chunks),
			// whose bytes the watcher reads with GET RANGE. Reported as
			// its own op, with no key for a new file, it was an event no
			// proxy could write: the watch broke at it, again on every
			// resume.
			nf := m.files[string(c.key)]
			ch.Op, ch.Key, ch.Value = wire.OpPut, nf.key, nf.value
		case wire.OpAppend:
			nf := m.files[string(c.key)]
			ch.Key, ch.Value = nf.key, nf.value[len(ch.Prev):len(nf.value):len(nf.value)]
		}
		return r
	}
	written := Result{Code: wire.CodeOK, Index: index, Version: index}
	switch c.op {
	case wire.OpPut:
		if len(c.value) > m.opts.MaxValue {
			return Result{Code: wire.CodeTooLarge, Index: index, Version: cur}
		}
		if f == nil {
			f = m.create(c.key)
		}
		m.setValue(f, index, slices.Clone(c.value))
		return written
	case wire.OpAppend:
		if f == nil {
			if len(c.value) > m.opts.MaxValue {
				return Result{Code: wire.CodeTooLarge, Index: index}
			}
			f = m.create(c.key)
			m.setValue(f, index, slices.Clone(c.value))
			return written
		}
		if f.large || len(f.value)+len(c.value) > m.opts.MaxValue {
			// A large file is not appended to (yet): its chunks are
			// fixed, and the append would have to rewrite the last.
			return Result{Code: wire.CodeTooLarge, Index: index, Version: cur}
		}
		// Writes only past len(f.value): slices from Get are unaffected.
		m.setValue(f, index, append(f.value, c.value...))
		return written
	case wire.OpCAS:
		if len(c.value) > m.opts.MaxValue {
			return Result{Code: wire.CodeTooLarge, Index: index, Version: cur}
		}
		if cur != c.version {
			return Result{Code: wire.CodeConflict, Index: index, Version: cur}
		}
		if f == nil {
			f = m.create(c.key)
		}
		m.setValue(f, index, slices.Clone(c.value))
		return written
	case wire.OpPutFile, wire.OpCASFile:
		if len(c.value) > m.opts.MaxValue {
			return Result{Code: wire.CodeTooLarge, Index: index, Version: cur}
		}
		if c.op == wire.OpCASFile && cur != c.version {
			return Result{Code: wire.CodeConflict, Index: index, Version: cur}
		}
		if f == nil {
			f = m.create(c.key)
		}
		m.setValue(f, index, slices.Clone(c.value))
		f.large, f.size = true, c.size
		return written
	case wire.OpDel:
		if f == nil {
			return Result{Code: wire.CodeNotFound, Index: index}
		}
		m.keys.remove(f.key)
		delete(m.files, f.key)
		m.valueBytes -= int64(len(f.value))
		m.dirtyFiles.drop(f, &m.sum)
		return Result{Code: wire.CodeOK, Index: index}
	}
	// parseCommand only yields the six ops above.
	panic("filestore: unreachable op " + c.op.String())
}

func (m *Machine) create(key []byte) *file {
	f := &file{key: string(key)}
	m.files[f.key] = f
	m.keys.insert(f.key)
	return f
}

func (m *Machine) setValue(f *file, version uint64, v []byte) {
	m.valueBytes += int64(len(v)) - int64(len(f.value))
	f.value, f.version = v, version
	f.large, f.size = false, 0
	m.dirtyFiles.mark(f)
}

// expireSessions drops every session idle for longer than the TTL in log
// time. Log time only moves forward, so each session expires once and the
// heap root is the only candidate.
func (m *Machine) expireSessions() {
	for len(m.byActive) > 0 {
		s := m.byActive[0]
		// active <= logTime always, so the unsigned difference is exact.
		if uint64(m.logTime)-uint64(s.active) <= m.ttlMs {
			return
		}
		m.dropSession(s)
	}
}

func (m *Machine) dropSession(s *session) {
	m.byActive.remove(s)
	delete(m.sessions, s.client)
	m.dirtySessions.drop(s, &m.sum)
}

// touch records activity on s at the current log time.
func (m *Machine) touch(s *session) {
	s.active = m.logTime
	m.byActive.fix(s.pos)
	m.dirtySessions.mark(s)
}

// remember stores r as client's reply to seq, the session's new last,
// creating its session (s is nil) if needed, and evicting the least
// recently active session first if the table is full, so the new session
// always survives. Replies below ack are forgotten.
func (m *Machine) remember(s *session, client, seq, ack uint64, r Result) {
	if s == nil {
		if len(m.sessions) >= m.opts.MaxSessions {
			m.dropSession(m.byActive[0])
		}
		s = &session{client: client, active: m.logTime}
		m.sessions[client] = s
		m.byActive.push(s)
	}
	s.last = seq
	s.replies = append(s.replies, cached{code: r.Code, index: r.Index, version: r.Version})
	s.forget(ack, m.opts.SessionWindow)
	m.touch(s)
}

// Get returns the value and version of the file at key. The value shares
// memory with the Machine: the caller must not modify it. It stays valid
// and unchanged after later writes to the file. For a large file (see
// IsLarge) the value is its manifest's text, not its bytes.
func (m *Machine) Get(key string) (value []byte, version uint64, ok bool) {
	f := m.files[key]
	if f == nil {
		return nil, 0, false
	}
	return f.value[:len(f.value):len(f.value)], f.version, true
}

// IsLarge reports whether the file at key exists and is a large file,
// whose Get value is its manifest (wire.ParseManifest) and whose bytes live in
// chunk files.
func (m *Machine) IsLarge(key string) bool {
	f := m.files[key]
	return f != nil && f.large
}

// EachLarge calls fn with the key and manifest of every large file, in key
// order, until fn returns false. The manifest shares memory with the
// Machine: fn must not modify it or keep it past its call.
func (m *Machine) EachLarge(fn func(key string, manifest []byte) bool) {
	m.keys.each(func(k string) bool {
		if f := m.files[k]; f.large {
			return fn(k, f.value)
		}
		return true
	})
}

// Stat returns the size and version of the file at key; for a large file,
// the size of its bytes, not of its manifest.
func (m *Machine) Stat(key string) (size uint64, version uint64, ok bool) {
	f := m.files[key]
	if f == nil {
		return 0, 0, false
	}
	if f.large {
		return f.size, f.version, true
	}
	return uint64(len(f.value)), f.version, true
}

// List returns, in byte order, up to limit keys that start with prefix;
// limit <= 0 means no limit.
func (m *Machine) List(prefix string, limit int) []string {
	return m.keys.list(prefix, limit)
}

// Len returns the number of files.
func (m *Machine) Len() int { return len(m.files) }

// ValueBytes returns the total size of all values.
func (m *Machine) ValueBytes() int64 { return m.valueBytes }

// Sessions returns the number of live client sessions.
func (m *Machine) Sessions() int { return len(m.sessions) }

// Applied returns the index of the last command applied, 0 for none.
func (m *Machine) Applied() uint64 { return m.applied }

// LogTime returns the machine's clock: the largest command stamp applied,
// in milliseconds, or 0.
func (m *Machine) LogTime() int64 { return m.logTime }

// Options returns the options in effect, defaults filled in.
func (m *Machine) Options() Options { return m.opts }

// Clone returns an independent copy of m, so the node can write a snapshot
// from the copy while it keeps applying to m. Values are shared, not
// copied: they are never modified in place. The cost is a few allocations
// per file and session.
func (m *Machine) Clone() *Machine {
	m.digestMu.Lock()
	defer m.digestMu.Unlock()
	c := &Machine{
		opts:        m.opts,
		ttlMs:       m.ttlMs,
		files:       make(map[string]*file, len(m.files)),
		keys:        m.keys.clone(),
		valueBytes:  m.valueBytes,
		sessions:    make(map[uint64]*session, len(m.sessions)),
		byActive:    make(sessionHeap, len(m.byActive)),
		applied:     m.applied,
		logTime:     m.logTime,
		sum:         m.sum,
		digest:      m.digest,
		digestAt:    m.digestAt,
		digestValid: m.digestValid,
	}
	files := make([]file, len(m.files)) // one allocation for all
	i := 0
	for k, f := range m.files {
		nf := &files[i]
		i++
		*nf = *f
		// Capped so that an APPEND on the copy reallocates rather than
		// writing into spare capacity that m may also fill. m itself
		// is left alone: Clone only reads it.
		nf.value = f.value[:len(f.value):len(f.value)]
		c.files[k] = nf
	}
	sessions := make([]session, len(m.byActive))
	nreplies := 0
	for _, s := range m.byActive {
		nreplies += len(s.replies)
	}
	replies := make([]cached, 0, nreplies) // one allocation for all
	for i, s := range m.byActive {
		ns := &sessions[i]
		*ns = *s
		// Copied: sessions rewrite their replies in place. Capped, so an
		// append on the copy reallocates rather than running into the
		// next session's.
		k := len(replies)
		replies = append(replies, s.replies...)
		ns.replies = replies[k:len(replies):len(replies)]
		c.byActive[i] = ns
		c.sessions[ns.client] = ns
	}
	for _, f := range m.dirtyFiles.list {
		c.dirtyFiles.list = append(c.dirtyFiles.list, c.files[f.key])
	}
	for _, s := range m.dirtySessions.list {
		c.dirtySessions.list = append(c.dirtySessions.list, c.sessions[s.client])
	}
	return c
}
