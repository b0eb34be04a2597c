package nemesis

// This file owns the history: operations with their kinds and outcomes,
// the nemesis events, saving and loading them, and the Recorder that
// collects them on one monotonic clock. The Recorder is safe for
// concurrent use under its mu: every client, the nemesis and Run record.

import (
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"

	"synod/wire/line"
)

// Kind is an operation's kind.
type Kind uint8

// Operation kinds. Reads carry their consistency Level.
const (
	KindPut Kind = iota + 1
	KindAppend
	KindCAS
	KindGet
)

// String returns the kind's protocol verb.
func (k Kind) String() string {
	switch k {
	case KindPut:
		return "put"
	case KindAppend:
		return "append"
	case KindCAS:
		return "cas"
	case KindGet:
		return "get"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// IsWrite reports whether k changes state.
func (k Kind) IsWrite() bool { return k == KindPut || k == KindAppend || k == KindCAS }

// Outcome is what the client learned about an operation.
type Outcome uint8

// Outcomes. Pending is an operation still in flight when a history was
// taken; Check treats a pending write as Unknown and drops a pending read.
const (
	Pending Outcome = iota
	// OK: a write acknowledged at Index, or a read that found the key
	// (Value at version Index).
	OK
	// NotFound: a read that found no such key.
	NotFound
	// Conflict: a CAS refused because the key was at version Index.
	Conflict
	// Failed: a write the proxy refused with UNAVAILABLE or BUSY, so
	// nothing was applied, or a read that got no answer.
	Failed
	// Unknown: a write whose connection broke or timed out before its
	// answer: it may or may not have been applied, now or later.
	Unknown
)

// String returns the outcome's name.
func (o Outcome) String() string {
	switch o {
	case Pending:
		return "pending"
	case OK:
		return "ok"
	case NotFound:
		return "not-found"
	case Conflict:
		return "conflict"
	case Failed:
		return "failed"
	case Unknown:
		return "unknown"
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// Op is one client operation as recorded: the call and return times are
// nanoseconds since the Recorder started, on the one monotonic clock of the
// test process.
type Op struct {
	ID     int        `json:"id"`
	Client int        `json:"client"`
	Proxy  int        `json:"proxy"`
	Kind   Kind       `json:"kind"`
	Level  line.Level `json:"level,omitempty"` // reads
	Key    string     `json:"key"`
	// Value is the written value (a token ending in ';') or, for a read
	// that found the key, the value read.
	Value string `json:"value,omitempty"`
	// Expect is a CAS's expected version, or the MIN index a read sent.
	Expect  uint64  `json:"expect,omitempty"`
	Call    int64   `json:"call"`
	Return  int64   `json:"return"`
	Outcome Outcome `json:"outcome"`
	// Index is a write's index, a read's version, or the version a CAS
	// conflicted with.
	Index uint64 `json:"index,omitempty"`
	Err   string `json:"err,omitempty"`
	// Final marks the reads of every key after the cluster healed, which
	// must show every acknowledged write.
	Final bool `json:"final,omitempty"`
	// Conn numbers the client connection the operation went over (from 1;
	// 0: not recorded) and Seq is its place among that connection's
	// operations, from 1, in the order they were sent.
	Conn int `json:"conn,omitempty"`
	Seq  int `json:"seq,omitempty"`
	// Pipelined marks an operation sent while others on its connection
	// awaited their replies.
	Pipelined bool `json:"pipelined,omitempty"`
	// File marks a large file's write (PUTFILE, as a put or, with
	// VERSION, a cas) or whole-file read (GET RANGE): Value is the token
	// the file was made from (files.go), and Sum the SHA-256 the write
	// sent or the read's reply named.
	File bool   `json:"file,omitempty"`
	Sum  string `json:"sum,omitempty"`

	// after, if afterSet, is what the reads show an append of unknown
	// outcome applied right after: the token before its own in a value
	// ("": the key did not exist). Set by linearizableOps on its copies.
	after    string
	afterSet bool
	// prev is the index of the write to the same key just below this
	// one's, among those whose index is known (0: none); set on copies.
	prev uint64
	// sum caches valueSum of a read's value.
	sum    [16]byte
	sumSet bool
}

// valueSum returns the digest of the value a read saw (see keyState).
func (op *Op) valueSum() [16]byte {
	if op.sumSet {
		return op.sum
	}
	sum, _ := sumOf(op.Value)
	return sum
}

// Event is a nemesis action recorded on the history's clock: a fault from
// Start to End, or a point in time when End equals Start.
type Event struct {
	Start int64  `json:"start"`
	End   int64  `json:"end"`
	What  string `json:"what"`
}

// History is everything one run recorded.
type History struct {
	Seed   int64   `json:"seed"`
	Ops    []Op    `json:"ops"`
	Events []Event `json:"events"`
}

// Save writes h as JSON to path.
func (h *History) Save(path string) error {
	b, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("nemesis: encode history: %w", err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("nemesis: save history: %w", err)
	}
	return nil
}

// LoadHistory reads a history written by Save.
func LoadHistory(path string) (History, error) {
	var h History
	b, err := os.ReadFile(path)
	if err != nil {
		return h, fmt.Errorf("nemesis: load history: %w", err)
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return h, fmt.Errorf("nemesis: decode history %s: %w", path, err)
	}
	return h, nil
}

// Recorder collects a history from many goroutines on one monotonic clock.
type Recorder struct {
	start  time.Time
	mu     sync.Mutex
	ops    []*Op
	events []Event
	conns  int
}

// NewConn returns a new connection number, from 1.
func (r *Recorder) NewConn() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.conns++
	return r.conns
}

// NewRecorder starts the clock.
func NewRecorder() *Recorder { return &Recorder{start: time.Now()} }

// Now returns the nanoseconds since the recorder started. time.Since reads
// the monotonic clock, so wall-clock jumps do not reorder a history.
func (r *Recorder) Now() int64 { return int64(time.Since(r.start)) }

// Begin records op's call now and returns the recorded operation for End.
// Take the call time before sending, so the interval covers the request.
func (r *Recorder) Begin(op Op) *Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	op.ID = len(r.ops)
	op.Call = r.Now()
	op.Outcome = Pending
	p := &op
	r.ops = append(r.ops, p)
	return p
}

// End records op's outcome with its return time now (taken after the reply
// arrived).
func (r *Recorder) End(op *Op, out Outcome, index uint64, value string, err error) {
	now := r.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	op.Return = now
	op.Outcome = out
	op.Index = index
	if op.Kind == KindGet {
		op.Value = value
	}
	if err != nil {
		op.Err = err.Error()
	}
}

// Sum records the SHA-256 a file read's reply named.
func (r *Recorder) Sum(op *Op, sum string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	op.Sum = sum
}

// Note records a point event (a replica's start and its flags, say).
func (r *Recorder) Note(what string) { r.Mark(r.Now(), what) }

// Mark records a nemesis event that started at start (a Now value) and
// ends now.
func (r *Recorder) Mark(start int64, what string) {
	now := r.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, Event{Start: start, End: now, What: what})
}

// History returns a copy of what was recorded so far; operations still in
// flight are Pending.
func (r *Recorder) History(seed int64) History {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := History{Seed: seed, Ops: make([]Op, len(r.ops)), Events: append([]Event(nil), r.events...)}
	for i, p := range r.ops {
		h.Ops[i] = *p
	}
	return h
}
