package proxy

// This file owns PUTFILE on the proxy: the connection's reader goroutine
// reads the file's bytes one chunk at a time (never the whole file; two
// chunk buffers, so one chunk is read while the one before is stored, by
// a goroutine of its own), stores each chunk on the replicas over
// connections of the upload's own
// (KindChunkPut, answered once the chunk is fsynced), and only when a
// majority of voters holds every chunk and the whole file's SHA-256
// matches the client's does it send the file's manifest as a write
// (OpPutFile) down the ordinary write path: the master, the session, the
// hold queue. Once it is chosen, a majority of the voters must be found
// holding every chunk before the client hears OK (confirmChunks, on a
// goroutine of its own per file). An upload that stops short, fails its
// checksum or cannot reach a majority sends no write, so nothing becomes
// visible; the chunks it stored stay on disk unreferenced until each
// replica's chunk collector removes them (node/chunkgc.go).

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"synod/wire"
	"synod/wire/line"
)

// ErrChunkQuorum is returned when a chunk could not be stored on a
// majority of the voters.
var ErrChunkQuorum = errors.New("proxy: chunk not stored on a majority")

// ErrFileUnconfirmed is returned when a large file's manifest was chosen
// but a majority of the voters could not be found holding its chunks
// within the write timeout: the file is in the store, but not as safe as
// an acknowledged write, so it is not acknowledged.
var ErrFileUnconfirmed = errors.New("proxy: file written but its chunks not confirmed on a majority")

// putFile runs a PUTFILE on the reader goroutine and reports whether to
// read on.
func (c *conn) putFile(cl *call) bool {
	req := cl.req
	refuse := func(code wire.Code, msg string, fatal bool) bool {
		cl.res = made(code, msg)
		cl.close = fatal
		return c.push(cl) && !fatal
	}
	chunk := c.s.cfg.ChunkSize
	if n := manifestLen(int64(req.Size), chunk); n > int64(c.s.cfg.MaxValue) {
		return refuse(wire.CodeTooLarge, fmt.Sprintf("a file of %d bytes in chunks of %d has a manifest of about %d bytes, over the max value %d: raise --chunk-size or --max-value",
			req.Size, chunk, n, c.s.cfg.MaxValue), true)
	}
	release, code, msg := c.admitUpload(req.Size) // uploadlimit.go
	if release == nil {
		return refuse(code, msg, true)
	}
	defer release()
	// The two chunk buffers count in the server's in-flight bytes.
	// Refused, the bytes are not read: the connection closes after the
	// answer.
	charge := 2 * int64(min(uint64(chunk), req.Size))
	if !c.chargeGlobal(charge, true) {
		c.s.cnt.memBusy.Add(1)
		return refuse(wire.CodeBusy, fmt.Sprintf("proxy in-flight byte budget (%d bytes) full", c.s.cfg.MaxInflightBytes), true)
	}
	defer c.chargeGlobal(-charge, false)

	up := c.s.rt.newUpload()
	defer up.close()
	// Two buffers: chunk i+1 is read from the client while chunk i is
	// being stored. A buffer is refilled only after its store ended.
	var bufs [2][]byte
	for i := range bufs {
		bufs[i] = make([]byte, min(uint64(chunk), req.Size))
	}
	var storing chan error // the store in flight, nil for none
	wait := func() error {
		if storing == nil {
			return nil
		}
		err := <-storing
		storing = nil
		return err
	}
	defer wait()
	whole := sha256.New()
	m := wire.Manifest{Size: req.Size, ChunkSize: uint64(chunk)}
	body := c.lr.Body(req.Size)
	for i, left := 0, req.Size; left > 0; i++ {
		n := min(left, uint64(chunk))
		b := bufs[i%2][:n]
		if _, err := io.ReadFull(body, b); err != nil {
			// A short upload: the client went away or stalled. Nothing
			// was proposed, and nobody is left to answer.
			c.s.log.Debug().Err(err).Str("key", req.Key).Msg("upload ended short")
			return false
		}
		whole.Write(b)
		sum := wire.SumOf(b)
		if err := wait(); err != nil {
			return refuse(wire.CodeUnavailable, err.Error(), true)
		}
		ch := make(chan error, 1)
		go func() { ch <- up.store(sum, b) }()
		storing = ch
		m.Chunks = append(m.Chunks, sum)
		left -= n
	}
	if err := wait(); err != nil {
		return refuse(wire.CodeUnavailable, err.Error(), true)
	}
	if err := c.lr.EndBody(); err != nil {
		var pe *line.ProtoError
		if errors.As(err, &pe) {
			cl.perr = pe
			cl.close = true
			c.push(cl)
		}
		return false
	}
	whole.Sum(m.Sum[:0])
	if got := hex.EncodeToString(m.Sum[:]); got != req.Sum {
		return refuse(wire.CodeBadRequest, fmt.Sprintf("checksum mismatch: the bytes have sha256 %s, the request said %s; nothing stored", got, req.Sum), false)
	}
	cl.req.Value = m.Append(nil) // within MaxValue: manifestLen bounds it
	cl.confirm = &m
	return c.remote(cl)
}

// confirmChunks returns once a majority of the voters the router knows now
// holds every chunk of m durably, asking them all, again and again until
// the write timeout. A PUTFILE is acknowledged only then. The chunks
// reached a majority before the manifest was proposed, but a replica that
// acknowledged one may have lost its disk since (a wiped replica cannot
// know it lacks the chunks of a file that is in no state yet), and the
// manifest may have been chosen by voters that never held them; those
// fetch them once they apply it (node/chunkdebt.go), so this wait is
// short, and without it the file would rest on a single copy. Runs on a
// goroutine of its own (see conn.newOp).
func (rt *router) confirmChunks(m *wire.Manifest) error {
	seen := map[wire.ChunkSum]bool{}
	var sums [][]byte
	for _, sum := range m.Chunks {
		if !seen[sum] {
			seen[sum] = true
			sums = append(sums, sum[:])
		}
	}
	deadline := time.Now().Add(rt.cfg.WriteTimeout)
	pause := 10 * time.Millisecond
	for {
		u := rt.newUpload()
		got, why := u.holders(sums)
		u.close()
		if got >= u.need {
			return nil
		}
		if !time.Now().Add(pause).Before(deadline) {
			return fmt.Errorf("%w: %d of %d voters hold all %d chunks, %d needed (%v)", ErrFileUnconfirmed, got, u.voter, len(sums), u.need, why)
		}
		select {
		case <-rt.ctx.Done():
			return fmt.Errorf("%w: %w", ErrFileUnconfirmed, rt.ctx.Err())
		case <-time.After(pause):
		}
		pause = min(2*pause, 500*time.Millisecond)
	}
}

// holders asks every voter of u which of sums it holds and counts those
// that hold them all; why says what kept one out.
func (u *upload) holders(sums [][]byte) (int, error) {
	var wg sync.WaitGroup
	all := make([]bool, len(u.reps))
	errs := make([]error, len(u.reps))
	for i, r := range u.reps {
		if !r.voter {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			all[i], errs[i] = u.has(r, sums)
		}()
	}
	wg.Wait()
	got := 0
	var why error
	for i := range u.reps {
		if all[i] {
			got++
		} else if why == nil {
			why = errs[i]
		}
	}
	return got, why
}

// has reports whether r holds every chunk of sums durably.
func (u *upload) has(r *uploadRep, sums [][]byte) (bool, error) {
	ctx, cancel := context.WithTimeout(u.ctx, u.rt.cfg.WriteTimeout)
	defer cancel()
	if err := u.dial(ctx, r); err != nil {
		return false, err
	}
	var held wire.ChunkHeld
	if err := r.cl.Call(ctx, wire.KindChunkHas, &wire.ChunkHas{Sums: sums}, &held); err != nil {
		return false, fmt.Errorf("replica %d: %w", r.id, err)
	}
	if held.Code != wire.CodeOK || len(held.Held) != len(sums) {
		return false, fmt.Errorf("replica %d: %s %s (%d answers for %d chunks)", r.id, held.Code, held.Msg, len(held.Held), len(sums))
	}
	for i, ok := range held.Held {
		if !ok {
			return false, fmt.Errorf("replica %d lacks chunk %x", r.id, sums[i])
		}
	}
	return true, nil
}

// dial opens r's connection for the upload if it has none.
func (u *upload) dial(ctx context.Context, r *uploadRep) error {
	if r.cl != nil {
		return nil
	}
	hello := wire.Hello{ClusterID: u.rt.cfg.ClusterID, Role: wire.RoleProxy}
	cl, err := wire.DialClient(ctx, r.addr, hello, r.rp.dialOptions())
	if err != nil {
		return fmt.Errorf("replica %d: %w", r.id, err)
	}
	r.cl = cl
	return nil
}

// upload is one PUTFILE's connections to the replicas, dialled on demand
// and dropped at the first failure (its chunks then count nowhere).
// Owned by the uploading reader goroutine; store runs one goroutine per
// replica for each chunk and waits for them all.
type upload struct {
	rt    *router
	ctx   context.Context
	reps  []*uploadRep
	need  int // acknowledgements of voters each chunk needs
	voter int
}

type uploadRep struct {
	id    uint64
	addr  string
	voter bool
	rp    *replica
	cl    *wire.Client
	err   error // sticky: this replica takes no more chunks of the upload
}

// newUpload takes the members the router knows now.
func (rt *router) newUpload() *upload {
	u := &upload{rt: rt, ctx: rt.ctx}
	rt.mu.Lock()
	for _, rp := range rt.reps {
		if rp.removed {
			continue
		}
		u.reps = append(u.reps, &uploadRep{id: rp.id, addr: rp.addr, voter: rp.voter, rp: rp})
		if rp.voter {
			u.voter++
		}
	}
	rt.mu.Unlock()
	u.need = u.voter/2 + 1
	return u
}

// store puts one chunk on every replica still in the upload and returns
// once each answered, an error wrapping ErrChunkQuorum unless a majority
// of the voters has it on disk.
func (u *upload) store(sum wire.ChunkSum, data []byte) error {
	var wg sync.WaitGroup
	acks := make([]bool, len(u.reps))
	for i, r := range u.reps {
		if r.err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			acks[i] = u.put(r, sum, data)
		}()
	}
	wg.Wait()
	got := 0
	var why error
	for i, r := range u.reps {
		if acks[i] && r.voter {
			got++
		}
		if r.err != nil && why == nil {
			why = r.err
		}
	}
	if got < u.need {
		return fmt.Errorf("%w: chunk %s on %d of %d voters, %d needed (%v)", ErrChunkQuorum, sum, got, u.voter, u.need, why)
	}
	return nil
}

// put stores the chunk on one replica and reports whether it acknowledged.
func (u *upload) put(r *uploadRep, sum wire.ChunkSum, data []byte) bool {
	timeout := u.rt.cfg.WriteTimeout
	ctx, cancel := context.WithTimeout(u.ctx, timeout)
	defer cancel()
	if err := u.dial(ctx, r); err != nil {
		r.err = err
		return false
	}
	var ack wire.ChunkAck
	if err := r.cl.Call(ctx, wire.KindChunkPut, &wire.ChunkPut{Sum: sum[:], Data: data}, &ack); err != nil {
		r.err = fmt.Errorf("replica %d: %w", r.id, err)
		return false
	}
	if ack.Code != wire.CodeOK {
		r.err = fmt.Errorf("replica %d: %s %s", r.id, ack.Code, ack.Msg)
		return false
	}
	return true
}

// close closes the upload's connections.
func (u *upload) close() {
	for _, r := range u.reps {
		if r.cl != nil {
			r.cl.Close()
		}
	}
}
