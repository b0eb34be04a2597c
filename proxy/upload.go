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
// hold queue. An upload that stops short, fails its checksum or cannot
// reach a majority sends no write, so nothing becomes visible; the chunks
// it stored stay on disk unreferenced until garbage collection (not
// built yet).

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"

	"synod/wire"
	"synod/wire/line"
)

// ErrChunkQuorum is returned when a chunk could not be stored on a
// majority of the voters.
var ErrChunkQuorum = errors.New("proxy: chunk not stored on a majority")

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
	return c.remote(cl)
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
	if r.cl == nil {
		hello := wire.Hello{ClusterID: u.rt.cfg.ClusterID, Role: wire.RoleProxy}
		cl, err := wire.DialClient(ctx, r.addr, hello, r.rp.dialOptions())
		if err != nil {
			r.err = fmt.Errorf("replica %d: %w", r.id, err)
			return false
		}
		r.cl = cl
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
