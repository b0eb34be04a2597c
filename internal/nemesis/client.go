package nemesis

// This file owns the clients: the workload they draw from, and each
// client's connection to a proxy, its requests (sequential or pipelined;
// the file operations are in files.go) and what it records of them. Each client runs on a goroutine of its own
// that Run starts; they share only the Recorder.

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"time"

	"synod/wire/line"
)

// workload shapes what the clients do.
type workload struct {
	// Keys are read and written by every kind of operation; LogKeys are
	// only appended to, so every acknowledged append must stay in them.
	Keys, LogKeys []string
	// Hot is the share of operations that go to the first HotKeys keys and
	// the first log key, so some keys see many concurrent operations.
	Hot     float64
	HotKeys int
	// Rate is the operations per second each client aims at (0: as fast
	// as it can).
	Rate float64
	// Timeout bounds one operation; past it the outcome is unknown and the
	// connection is dropped. It should exceed the proxies' hold window.
	Timeout time.Duration
	// Pipeline is how many writes a pipelined client keeps in flight on
	// its connection (0: 8).
	Pipeline int
	// FileKeys hold large files only (files.go): FileShare of a
	// sequential client's operations go to them, PUTFILEs and whole-file
	// reads, each file named in Files.
	FileKeys  []string
	FileShare float64
	Files     *fileRegistry
}

// client is one client: one connection at a time to one proxy, redialled
// (to the next proxy) after a failure. A sequential client sends one
// request and waits for its reply; a pipelined one sends a batch of writes
// to a few keys, with a session read or two among them, then reads every
// reply.
type client struct {
	id        int
	proxies   []string
	proxy     int
	w         workload
	rec       *Recorder
	rng       *rand.Rand
	pipelined bool

	conn     *line.Client
	connID   int // the recorder's number for conn
	connSeq  int // operations sent on conn so far
	level    line.Level
	seq      int
	session  uint64            // index of this client's last acknowledged write
	versions map[string]uint64 // last version seen per key, for CAS
}

func newClient(id int, proxies []string, w workload, rec *Recorder, seed int64, pipelined bool) *client {
	return &client{id: id, proxies: proxies, proxy: id % len(proxies), w: w, rec: rec,
		rng: rand.New(rand.NewSource(seed)), versions: map[string]uint64{}, pipelined: pipelined}
}

// begin records the call of op, sent next on the connection.
func (c *client) begin(op Op) *Op {
	c.connSeq++
	op.Client, op.Proxy, op.Conn, op.Seq = c.id, c.proxy, c.connID, c.connSeq
	return c.rec.Begin(op)
}

// run issues operations until ctx ends.
func (c *client) run(ctx context.Context) {
	defer c.drop()
	var interval time.Duration
	if c.w.Rate > 0 {
		interval = time.Duration(float64(time.Second) / c.w.Rate)
	}
	next := time.Now()
	for ctx.Err() == nil {
		if interval > 0 {
			next = next.Add(interval)
			if now := time.Now(); next.Before(now.Add(-time.Second)) {
				next = now // do not make up for a long stall in a burst
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Until(next)):
			}
		}
		if c.conn == nil && !c.dial(ctx) {
			continue
		}
		// An operation under way when the run ends still gets its answer:
		// cut short, a write's outcome would be unknown for no reason.
		if c.pipelined {
			n := c.pipeline()
			// A batch counts as n operations of the client's rate.
			next = next.Add(time.Duration(n-1) * interval)
			continue
		}
		c.step(context.WithoutCancel(ctx))
	}
}

func (c *client) dial(ctx context.Context) bool {
	dctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	conn, err := line.Dial(dctx, c.proxies[c.proxy], line.Options{})
	if err != nil {
		c.proxy = (c.proxy + 1) % len(c.proxies)
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
		return false
	}
	c.conn, c.level = conn, line.LevelLinearizable
	c.connID, c.connSeq = c.rec.NewConn(), 0
	if c.pipelined {
		// A pipelined client reads at session level: its reads must show
		// its connection's writes before them, and never go back.
		sctx, cancel := context.WithTimeout(ctx, c.w.Timeout)
		defer cancel()
		if err := c.conn.SetConsistency(sctx, line.LevelSession); err != nil {
			c.drop()
			return false
		}
		c.level = line.LevelSession
	}
	return true
}

// drop closes the connection after a failure; the next one goes to the
// next proxy, so both see clients come and go.
func (c *client) drop() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
		c.proxy = (c.proxy + 1) % len(c.proxies)
	}
}

func (c *client) token() string {
	c.seq++
	return fmt.Sprintf("%d.%d;", c.id, c.seq)
}

// step picks and runs one operation.
func (c *client) step(ctx context.Context) {
	if len(c.w.FileKeys) > 0 && c.rng.Float64() < c.w.FileShare {
		c.fileStep(ctx)
		return
	}
	nk, nl := len(c.w.Keys), len(c.w.LogKeys)
	i := c.rng.Intn(nk + nl)
	if hot := min(c.w.HotKeys, nk); hot > 0 && c.rng.Float64() < c.w.Hot {
		if i = c.rng.Intn(hot + 1); i == hot && nl > 0 {
			i = nk // the first log key
		}
	}
	p := c.rng.Intn(100)
	if i >= nk {
		key := c.w.LogKeys[i-nk]
		switch {
		case p < 45:
			c.write(ctx, KindAppend, key, 0)
		case p < 70:
			c.read(ctx, key, line.LevelLinearizable)
		case p < 85:
			c.read(ctx, key, line.LevelSession)
		default:
			c.read(ctx, key, line.LevelStale)
		}
		return
	}
	key := c.w.Keys[i]
	switch {
	case p < 15:
		c.write(ctx, KindPut, key, 0)
	case p < 35:
		c.write(ctx, KindAppend, key, 0)
	case p < 45:
		c.write(ctx, KindCAS, key, c.versions[key])
	case p < 70:
		c.read(ctx, key, line.LevelLinearizable)
	case p < 85:
		c.read(ctx, key, line.LevelSession)
	default:
		c.read(ctx, key, line.LevelStale)
	}
}

func (c *client) write(ctx context.Context, kind Kind, key string, expect uint64) {
	tok := c.token()
	op := c.begin(Op{Kind: kind, Key: key, Value: tok, Expect: expect})
	octx, cancel := context.WithTimeout(ctx, c.w.Timeout)
	var idx uint64
	var err error
	switch kind {
	case KindPut:
		idx, err = c.conn.Put(octx, key, []byte(tok))
	case KindAppend:
		idx, err = c.conn.Append(octx, key, []byte(tok))
	case KindCAS:
		idx, err = c.conn.CAS(octx, key, expect, []byte(tok))
	}
	cancel()
	c.endWrite(op, key, idx, err)
}

// endWrite records the outcome of write op to key, acknowledged at idx or
// failed with err, and drops the connection if err broke it.
func (c *client) endWrite(op *Op, key string, idx uint64, err error) {
	var se *line.ServerError
	switch {
	case err == nil:
		c.rec.End(op, OK, idx, "", nil)
		c.session = max(c.session, idx)
		c.versions[key] = idx
	case errors.As(err, &se) && se.Code == line.CodeConflict:
		c.rec.End(op, Conflict, se.Version, "", err)
		c.versions[key] = se.Version
	case errors.As(err, &se) && (se.Code == line.CodeUnavailable || se.Code == line.CodeBusy):
		c.rec.End(op, Failed, 0, "", err) // the proxy promises nothing was applied
	default:
		// A broken or timed-out connection, or an answer the proxy has no
		// promise for: the write may be applied, now or later.
		c.rec.End(op, Unknown, 0, "", err)
		if se == nil {
			c.drop()
		}
	}
}

func (c *client) read(ctx context.Context, key string, level line.Level) {
	octx, cancel := context.WithTimeout(ctx, c.w.Timeout)
	defer cancel()
	if c.level != level {
		if err := c.conn.SetConsistency(octx, level); err != nil {
			c.drop()
			return
		}
		c.level = level
	}
	// A session token carried explicitly survives a new connection, where
	// the proxy's own per-connection token starts again from zero; half
	// the session reads rely on the proxy's alone.
	var min uint64
	if level == line.LevelSession && c.rng.Intn(2) == 0 {
		min = c.session
	}
	file := isFileKey(key)
	op := c.begin(Op{Kind: KindGet, Level: level, Key: key, Expect: min, File: file})
	val, ver, err := getValue(octx, c.conn, c.rec, c.w.Files, op, min)
	var se *line.ServerError
	switch {
	case err == nil:
		c.rec.End(op, OK, ver, string(val), nil)
		c.versions[key] = ver
	case errors.Is(err, line.ErrNotFound):
		c.rec.End(op, NotFound, 0, "", nil)
		c.versions[key] = 0
	default:
		c.rec.End(op, Failed, 0, "", err)
		if !errors.As(err, &se) {
			c.drop()
		}
	}
}

// pipeline sends one batch: Pipeline appends to one or two keys, a session
// read in the middle and one at the end, all before reading any reply; then it reads the replies, which
// come in request order. It returns how many operations it sent.
func (c *client) pipeline() int {
	n := c.w.Pipeline
	if n <= 0 {
		n = 8
	}
	// Writes go to one or two append-only keys, the first two often,
	// which the sequential clients append to as well: a pipeline's order
	// shows in their values, and an unknown append to such a key is known
	// to have applied or not by the final read (linearizableOps). The
	// session reads go to any key, most of them written by others, so
	// monotonicity has something to show.
	if len(c.w.LogKeys) == 0 {
		return 0
	}
	pickLog := func() string {
		nl := len(c.w.LogKeys)
		if c.rng.Intn(2) == 0 {
			return c.w.LogKeys[c.rng.Intn(min(nl, 2))]
		}
		return c.w.LogKeys[c.rng.Intn(nl)]
	}
	keys := []string{pickLog()}
	if c.rng.Intn(2) == 0 {
		keys = append(keys, pickLog())
	}
	pickAny := func() string {
		nk := len(c.w.Keys)
		if hot := min(c.w.HotKeys, nk); hot > 0 && c.rng.Intn(2) == 0 {
			return c.w.Keys[c.rng.Intn(hot)]
		}
		if c.rng.Intn(3) == 0 {
			return keys[c.rng.Intn(len(keys))]
		}
		return c.w.Keys[c.rng.Intn(nk)]
	}
	type sent struct {
		op  *Op
		req line.Request
	}
	var batch []sent
	read := func() {
		key := pickAny()
		op := Op{Kind: KindGet, Level: line.LevelSession, Key: key, Pipelined: true}
		batch = append(batch, sent{&op, line.Request{Cmd: line.CmdGet, Key: key}})
	}
	for i := 0; i < n; i++ {
		key := keys[c.rng.Intn(len(keys))]
		tok := c.token()
		op := Op{Kind: KindAppend, Key: key, Value: tok, Pipelined: true}
		batch = append(batch, sent{&op, line.Request{Cmd: line.CmdAppend, Key: key, Value: []byte(tok)}})
		if i == n/2-1 {
			read()
		}
	}
	read()

	// Every reply is due within the timeout of the batch's start: past it
	// the connection is unusable and every write still unanswered unknown.
	if err := c.conn.SetDeadline(time.Now().Add(c.w.Timeout)); err != nil {
		c.drop()
		return len(batch)
	}
	ops := make([]*Op, len(batch))
	sentN := 0
	for i, b := range batch {
		ops[i] = c.begin(*b.op)
		if err := c.conn.Send(b.req); err != nil {
			break
		}
		sentN++
	}
	broken := c.conn.Flush() != nil
	for i, op := range ops {
		if op == nil {
			break
		}
		if broken || i >= sentN {
			c.endLost(op, errors.New("connection broken before the reply"))
			continue
		}
		rep, err := c.conn.Recv()
		var se *line.ServerError
		if err != nil && !errors.As(err, &se) {
			broken = true
			c.endLost(op, err)
			continue
		}
		switch {
		case op.Kind.IsWrite() && err == nil:
			c.rec.End(op, OK, rep.Index, "", nil)
			c.session = max(c.session, rep.Index)
			c.versions[op.Key] = rep.Index
		case op.Kind.IsWrite() && (se.Code == line.CodeUnavailable || se.Code == line.CodeBusy):
			c.rec.End(op, Failed, 0, "", err)
		case op.Kind.IsWrite():
			c.rec.End(op, Unknown, 0, "", err)
		case err == nil:
			c.rec.End(op, OK, rep.Version, string(rep.Value), nil)
		case errors.Is(err, line.ErrNotFound):
			c.rec.End(op, NotFound, 0, "", nil)
		default:
			c.rec.End(op, Failed, 0, "", err)
		}
	}
	if broken {
		c.drop()
		return len(batch)
	}
	if err := c.conn.SetDeadline(time.Time{}); err != nil {
		c.drop()
	}
	return len(batch)
}

// endLost ends op whose reply will never come: a write's outcome is
// unknown, a read failed.
func (c *client) endLost(op *Op, err error) {
	if op.Kind.IsWrite() {
		c.rec.End(op, Unknown, 0, "", err)
		return
	}
	c.rec.End(op, Failed, 0, "", err)
}
