package proxy

// backup.go: SNAPSHOT, an online backup streamed to the client
// (wire/line/snapshot.go has the client's side of the stream, wire/backup.go
// the replica's). The connection's reader starts it once everything before
// it is answered and reads nothing more until the stream is over; the
// connection's writer streams it (writeBackup), on a wire connection of
// its own to the chosen replica, so a backup's megabytes never queue in
// front of other requests to that replica. No other goroutine is involved.
//
// The replica is picked like a read, preferring followers: the followers
// of the current master (any live replica at consistency stale), the most
// advanced first, then the master. Until the stream's header reaches the
// client, a replica that cannot serve the backup (down, not master enough
// for a read index, busy, too slow) is passed over for the next, within
// the hold window; once data has gone out, a failure ends the stream with
// ERR UNAVAILABLE, and the client starts again (the synod CLI does).

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"time"

	"synod/wire"
	"synod/wire/line"
)

// maxBackups bounds the backups one proxy streams at once; one more is
// answered ERR BUSY.
const maxBackups = 4

// backupWindow is how many pieces the proxy asks a replica for ahead of
// the one it is writing, so the stream does not stop for a round trip per
// piece.
const backupWindow = 4

// The line protocol's chunk bounds are the replicas'.
const (
	_ = uint(line.MinSnapshotChunk - wire.MinBackupChunk)
	_ = uint(wire.MinBackupChunk - line.MinSnapshotChunk)
	_ = uint(line.MaxSnapshotChunk - wire.MaxBackupChunk)
	_ = uint(wire.MaxBackupChunk - line.MaxSnapshotChunk)
	_ = uint(wire.MaxBackupWindow - backupWindow)
)

// errBackupRefused wraps a replica's refusal of a backup; the refusal's
// code says whether another replica may do better.
var errBackupRefused = errors.New("proxy: backup refused")

// refusal is a replica's answer to a backup that is not a piece of it.
type refusal struct {
	code wire.Code
	msg  string
}

func (r *refusal) Error() string { return fmt.Sprintf("%v: %s %s", errBackupRefused, r.code, r.msg) }
func (r *refusal) Unwrap() error { return errBackupRefused }

// clientGone is a failure to write to the client: the connection is over.
type clientGone struct{ err error }

func (g *clientGone) Error() string { return g.err.Error() }
func (g *clientGone) Unwrap() error { return g.err }

// backupCall is what a SNAPSHOT call carries from the reader to the
// writer.
type backupCall struct {
	level    wire.Consistency
	minIndex uint64        // session level: the newest state the connection saw
	streamed chan struct{} // closed by the writer once the stream is over
}

// snapshot starts a SNAPSHOT request, on the reader: once every request
// before it is answered, it hands it to the writer and waits until the
// writer has streamed it. It reports whether to read on.
func (c *conn) snapshot(cl *call) bool {
	for _, prev := range c.run {
		<-prev.done
	}
	clear(c.run)
	c.run = c.run[:0]
	if c.aborted.Load() {
		return false // a write's outcome is unknown: the connection closes, nothing more starts
	}
	bk := &backupCall{level: wire.Consistency(c.level), streamed: make(chan struct{})}
	if c.level == line.LevelSession {
		bk.minIndex = c.lastIndex.Load()
	}
	cl.backup = bk
	if !c.push(cl) {
		return false
	}
	select {
	case <-bk.streamed:
		return true
	case <-c.wdone:
		return false
	}
}

// writeBackup streams cl's backup to the client, on the writer. Its error
// is the client connection's: the writer then closes it.
func (c *conn) writeBackup(w *line.Writer, cl *call) error {
	bk := cl.backup
	defer close(bk.streamed)
	if n := c.s.backups.Add(1); n > maxBackups {
		c.s.backups.Add(-1)
		return w.Err(line.CodeBusy, fmt.Sprintf("this proxy already streams %d backups", maxBackups))
	}
	defer c.s.backups.Add(-1)
	chunk := int(cl.req.Chunk)
	if chunk == 0 {
		chunk = line.DefaultSnapshotChunk
	}
	flush := func() error { return c.flush(w) }
	rt := c.s.rt
	deadline := time.Now().Add(rt.cfg.Hold)
	tried := map[uint64]bool{}
	var last error
	for {
		rp := rt.backupTarget(bk.level, tried)
		if rp == nil {
			if !time.Now().Before(deadline) {
				msg := "no replica could take a backup within the hold window"
				switch {
				case last != nil:
					msg += ": " + last.Error()
				case bk.level == wire.Linearizable:
					msg = "no master within the hold window to confirm a read index (at consistency stale a backup needs none)"
				}
				return w.Err(line.CodeUnavailable, msg)
			}
			clear(tried) // every replica had its turn: start over
			select {
			case <-time.After(rt.cfg.Poll):
			case <-rt.ctx.Done():
				return w.Err(line.CodeUnavailable, "proxy shutting down")
			case <-c.stop:
				return w.Err(line.CodeUnavailable, "proxy shutting down")
			}
			continue
		}
		tried[rp.id] = true
		started, err := c.streamFrom(rp, bk, chunk, w, flush)
		var gone *clientGone
		switch {
		case err == nil:
			return nil
		case errors.As(err, &gone):
			return gone.err
		case started:
			c.s.log.Warn().Err(err).Uint64("replica", rp.id).Msg("a backup broke off")
			return w.Err(line.CodeUnavailable, fmt.Sprintf("the backup from replica %d broke off: %v", rp.id, err))
		}
		var rf *refusal
		if errors.As(err, &rf) {
			switch rf.code {
			case wire.CodeBadRequest, wire.CodeTooLarge, wire.CodeInternal:
				return w.Err(lineCode(rf.code), rf.msg)
			}
		}
		c.s.log.Debug().Err(err).Uint64("replica", rp.id).Msg("a replica could not take a backup; trying another")
		last = err
	}
}

// backupTarget picks the replica for a backup at level c that is not in
// tried: a follower of the current master (any live replica at stale),
// the most advanced first, else the master.
func (rt *router) backupTarget(c wire.Consistency, tried map[uint64]bool) *replica {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	m := rt.master
	if m != nil && !m.alive {
		m = nil
	}
	if c == wire.Linearizable && m == nil {
		return nil // no follower could get a read index
	}
	var cands []*replica
	for _, rp := range rt.reps {
		if rp == m || tried[rp.id] || !rp.alive || rp.removed || !rp.voter {
			continue
		}
		if c != wire.Stale && m != nil && !follows(rp, m) {
			continue
		}
		cands = append(cands, rp)
	}
	slices.SortFunc(cands, func(a, b *replica) int {
		if a.ejected != b.ejected {
			if a.ejected {
				return 1
			}
			return -1
		}
		return cmp.Compare(b.applied, a.applied)
	})
	if len(cands) > 0 {
		return cands[0]
	}
	if m != nil && !tried[m.id] {
		return m
	}
	return nil
}

// streamFrom takes the backup from rp and writes it to the client. It
// reports whether anything reached the client: until then, a failure may
// be retried elsewhere.
func (c *conn) streamFrom(rp *replica, bk *backupCall, chunk int, w *line.Writer, clientFlush func() error) (started bool, err error) {
	rt := c.s.rt
	flush := func() error {
		if err := clientFlush(); err != nil {
			return &clientGone{err}
		}
		return nil
	}
	ctx, cancel := context.WithCancel(rt.ctx)
	defer cancel()
	opts := rp.dialOptions()
	// A replica answers the request once it reached the index (its read
	// timeout, 5 s by default) and each ask once the piece is encoded.
	opts.ReadTimeout = 2*rt.cfg.ReadTimeout + 10*time.Second
	wc, err := rp.dialConn(ctx, opts)
	if err != nil {
		return false, err
	}
	defer wc.Close()
	// The connection ends with the client's: a stream never outlives it.
	go func() {
		select {
		case <-c.wdone:
		case <-c.stop:
		case <-ctx.Done():
		}
		wc.Close()
	}()
	req := wire.BackupRequest{Consistency: bk.level, MinIndex: bk.minIndex, Chunk: uint32(chunk)}
	head, err := backupCall1(wc, wire.KindBackup, 1, &req)
	if err != nil {
		return false, err
	}
	if err := w.SnapshotBegin(line.SnapshotHeader{Index: head.Index, Slot: head.Slot, Keys: head.Keys,
		Bytes: head.Bytes, Digest: head.Digest, Replica: rp.id}); err != nil {
		return true, &clientGone{err}
	}
	if err := flush(); err != nil {
		return true, err
	}
	// Ask ahead: backupWindow asks out, one more for every piece written.
	next := uint64(1)
	ask := func() error {
		a := wire.BackupAsk{Stream: head.Stream, Seq: next}
		next++
		if err := wc.Send(wire.KindBackupAsk, 1+a.Seq, &a); err != nil {
			return err
		}
		return wc.Flush()
	}
	for range backupWindow {
		if err := ask(); err != nil {
			return true, err
		}
	}
	var size uint64
	var crc uint32
	for seq := uint64(1); ; seq++ {
		ch, err := recvChunk(wc, 1+seq)
		if err != nil {
			return true, err
		}
		if ch.Seq != seq || ch.Stream != head.Stream || len(ch.Data) > chunk || crc32.Checksum(ch.Data, castagnoli) != ch.CRC {
			return true, fmt.Errorf("proxy: replica %d sent a bad piece %d of its backup", rp.id, seq)
		}
		size += uint64(len(ch.Data))
		crc = crc32.Update(crc, castagnoli, ch.Data)
		if len(ch.Data) > 0 {
			if err := w.SnapshotBlock(ch.Data); err != nil {
				return true, &clientGone{err}
			}
		}
		if ch.Last {
			if ch.Size != size || ch.FileCRC != crc {
				return true, fmt.Errorf("proxy: replica %d's backup does not add up: %d bytes of CRC-32C %08x, it says %d and %08x",
					rp.id, size, crc, ch.Size, ch.FileCRC)
			}
			if err := w.SnapshotEnd(size, crc); err != nil {
				return true, &clientGone{err}
			}
			return true, flush()
		}
		if err := flush(); err != nil {
			return true, err
		}
		if err := ask(); err != nil {
			return true, err
		}
	}
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// backupCall1 sends one backup message and returns the chunk answering it.
func backupCall1(wc *wire.Conn, kind wire.Kind, id uint64, body any) (wire.BackupChunk, error) {
	if err := wc.Send(kind, id, body); err != nil {
		return wire.BackupChunk{}, err
	}
	if err := wc.Flush(); err != nil {
		return wire.BackupChunk{}, err
	}
	return recvChunk(wc, id)
}

// recvChunk reads the answer to envelope id: a chunk, or the refusal it
// carries as an error.
func recvChunk(wc *wire.Conn, id uint64) (wire.BackupChunk, error) {
	var ch wire.BackupChunk
	env, err := wc.Recv()
	if err != nil {
		return ch, err
	}
	if env.Kind != wire.KindBackupChunk || env.ID != id {
		return ch, fmt.Errorf("proxy: a backup's replica answered %s %d, want %s %d", env.Kind, env.ID, wire.KindBackupChunk, id)
	}
	if err := env.Decode(&ch); err != nil {
		return ch, err
	}
	if ch.Code != wire.CodeOK {
		return ch, &refusal{code: ch.Code, msg: ch.Msg}
	}
	return ch, nil
}
