package node

// This file owns online backups (wire/backup.go has the exchange). A
// proxy's KindBackup, read by the connection's server goroutine
// (serveClient), starts one backup goroutine per stream (runBackup): it
// waits until the replica has applied far enough (a read index from the
// master for a linearizable backup, exactly as a read gets one), clones the
// state machine under the applier's read lock (filestore.Machine.Clone:
// a few allocations per file, values shared), and then, without any lock,
// encodes the clone in the snapshot file format straight into the chunks
// the proxy pulls with KindBackupAsk. The server goroutine hands each ask
// to its stream; the stream answers on the connection's reply queue. A
// stream ends with its last chunk, a refusal, its connection (dropBackups)
// or the node; one whose asks stop coming for backupIdle is dropped. So
// writes never pause for a backup but for the clone, and a backup's
// memory is the clone's bookkeeping plus at most MaxBackupWindow chunks.

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"
	"time"

	"synod/filestore"
	"synod/filestore/chunks"
	"synod/filestore/wal"
	"synod/wire"
)

// MaxBackups bounds the backups one replica streams at once; one more is
// refused with CodeBusy.
const MaxBackups = 2

// backupIdle is how long a stream waits for its next ask before it is
// dropped: its proxy went away without closing the connection.
const backupIdle = 30 * time.Second

// errBackupStopped ends a stream whose connection or node went away.
var errBackupStopped = errors.New("node: backup stopped")

// backups are the streams this replica serves, by id.
type backups struct {
	mu      sync.Mutex
	next    uint64
	streams map[uint64]*backupStream
}

// backupStream is one backup in progress: its goroutine owns everything
// but the channels.
type backupStream struct {
	id   uint64
	conn *wire.Conn     // the connection it belongs to
	asks chan backupAsk // from the server goroutine
	stop chan struct{}  // closed to end it
	done chan struct{}  // closed once its goroutine returned
}

// backupAsk is one ask and the envelope id its chunk answers.
type backupAsk struct {
	id  uint64
	ask wire.BackupAsk
}

// sendChunk queues ch as the answer to envelope id.
func sendChunk(send func(outFrame), id uint64, ch wire.BackupChunk) {
	send(outFrame{kind: wire.KindBackupChunk, id: id, body: &ch, size: frameOverhead + len(ch.Data) + len(ch.Msg)})
}

// serveBackup handles a KindBackup or KindBackupAsk read by c's server
// goroutine. It reports false for a body that does not decode: the
// connection is then closed, as for any broken message.
func (n *Node) serveBackup(ctx context.Context, c *wire.Conn, env wire.Envelope, send func(outFrame)) bool {
	refuse := func(code wire.Code, msg string) {
		sendChunk(send, env.ID, wire.BackupChunk{Code: code, Msg: msg})
	}
	if env.Kind == wire.KindBackupAsk {
		var ask wire.BackupAsk
		if err := wire.Unmarshal(env.Body, &ask); err != nil {
			return false
		}
		n.bk.mu.Lock()
		st := n.bk.streams[ask.Stream]
		n.bk.mu.Unlock()
		if st == nil || st.conn != c {
			refuse(wire.CodeBadRequest, fmt.Sprintf("no backup stream %d on this connection", ask.Stream))
			return true
		}
		select {
		case st.asks <- backupAsk{id: env.ID, ask: ask}:
		default:
			refuse(wire.CodeBusy, fmt.Sprintf("more than %d asks of one backup unanswered", wire.MaxBackupWindow))
		}
		return true
	}
	var req wire.BackupRequest
	if err := wire.Unmarshal(env.Body, &req); err != nil {
		return false
	}
	chunk := int(req.Chunk)
	if chunk == 0 {
		chunk = wire.DefaultBackupChunk
	}
	switch {
	case chunk < wire.MinBackupChunk || chunk > wire.MaxBackupChunk:
		refuse(wire.CodeBadRequest, fmt.Sprintf("chunk of %d bytes: want %d to %d", chunk, wire.MinBackupChunk, wire.MaxBackupChunk))
		return true
	case chunk+4*frameOverhead > n.cfg.MaxFrame:
		refuse(wire.CodeBadRequest, fmt.Sprintf("chunk of %d bytes does not fit this replica's frames (%d bytes)", chunk, n.cfg.MaxFrame))
		return true
	case req.Consistency > wire.Stale:
		refuse(wire.CodeBadRequest, "unknown consistency level")
		return true
	}
	n.bk.mu.Lock()
	if len(n.bk.streams) >= MaxBackups {
		n.bk.mu.Unlock()
		refuse(wire.CodeBusy, fmt.Sprintf("this replica already streams %d backups", MaxBackups))
		return true
	}
	if n.bk.streams == nil {
		n.bk.streams = map[uint64]*backupStream{}
	}
	n.bk.next++
	st := &backupStream{id: n.bk.next, conn: c, asks: make(chan backupAsk, wire.MaxBackupWindow),
		stop: make(chan struct{}), done: make(chan struct{})}
	n.bk.streams[st.id] = st
	n.bk.mu.Unlock()
	go func() {
		defer close(st.done)
		defer n.bk.remove(st)
		n.runBackup(ctx, st, req, chunk, env.ID, send)
	}()
	return true
}

func (b *backups) remove(st *backupStream) {
	b.mu.Lock()
	if b.streams[st.id] == st {
		delete(b.streams, st.id)
	}
	b.mu.Unlock()
}

// dropBackups ends the streams of connection c and waits for their
// goroutines; c's server goroutine calls it as it returns.
func (n *Node) dropBackups(c *wire.Conn) {
	var mine []*backupStream
	n.bk.mu.Lock()
	for _, st := range n.bk.streams {
		if st.conn == c {
			mine = append(mine, st)
		}
	}
	n.bk.mu.Unlock()
	for _, st := range mine {
		close(st.stop)
	}
	for _, st := range mine {
		<-st.done
	}
}

// runBackup is one stream's goroutine: it reaches the index req asks for,
// clones the state, answers envelope id with the header, then streams the
// clone as the asks come.
func (n *Node) runBackup(ctx context.Context, st *backupStream, req wire.BackupRequest, chunk int, id uint64, send func(outFrame)) {
	clone, meta, rep := n.backupClone(ctx, st, req)
	if rep != nil {
		sendChunk(send, id, wire.BackupChunk{Code: rep.Code, Msg: rep.Msg, MasterID: rep.MasterID, MasterAddr: rep.MasterAddr})
		return
	}
	if clone == nil {
		return // stopped
	}
	files := backupChunks(clone)
	size := uint64(clone.ValueBytes())
	for _, f := range files {
		size += uint64(f.size)
	}
	sendChunk(send, id, wire.BackupChunk{Stream: st.id, Index: clone.Applied(), Slot: meta.Slot,
		Keys: uint64(clone.Len()), Bytes: size, Digest: clone.Digest()})
	start := time.Now()
	cw := &chunkWriter{ctx: ctx, st: st, send: send, chunk: chunk, buf: make([]byte, 0, chunk)}
	var err error
	if len(files) == 0 {
		err = clone.WriteSnapshot(cw, meta)
	} else {
		sums := make([]chunks.Sum, len(files))
		for i, f := range files {
			sums[i] = f.sum
		}
		n.refs.pinBackup(st.id, sums) // the chunk collector keeps them (chunkgc.go)
		defer n.refs.unpinBackup(st.id)
		err = n.writeBackupArchive(cw, clone, meta, files)
	}
	if err == nil {
		err = cw.emit(true)
	}
	var cf *chunkFailure
	if errors.As(err, &cf) {
		err = cw.refuse(wire.CodeUnavailable, cf.Error())
		if err == nil {
			err = cf
		}
	}
	if err != nil {
		n.log.Info().Err(err).Uint64("stream", st.id).Uint64("index", clone.Applied()).Uint64("bytes", cw.size).
			Msg("backup ended early")
		return
	}
	n.log.Info().Uint64("stream", st.id).Uint64("index", clone.Applied()).Uint64("slot", meta.Slot).
		Int("keys", clone.Len()).Uint64("bytes", cw.size).Dur("took", time.Since(start)).Msg("backup streamed")
}

// backupClone waits until the replica applied what req needs and returns a
// clone of the state machine and the snapshot's description. A refusal
// (not master, timeout, busy) comes back as a reply, a stop as nothing.
func (n *Node) backupClone(ctx context.Context, st *backupStream, req wire.BackupRequest) (*filestore.Machine, filestore.SnapshotMeta, *wire.Reply) {
	ready := make(chan struct{}, 1)
	refused := make(chan wire.Reply, 1)
	rq := &readReq{
		req:      wire.Request{Op: wire.OpGet, Consistency: req.Consistency, MinIndex: req.MinIndex},
		deadline: time.Now().Add(n.cfg.ReadTimeout),
		reply: func(r wire.Reply) {
			select {
			case refused <- r:
			default:
			}
		},
		then: func() {
			select {
			case ready <- struct{}{}:
			default:
			}
		},
	}
	if req.Consistency == wire.Linearizable {
		if n.degraded.Load() {
			n.notMaster(rq.reply)
		} else {
			select {
			case n.reads <- rq:
			default:
				rq.reply(wire.Reply{Code: wire.CodeBusy, Msg: "too many reads queued"})
			}
		}
	} else {
		n.wait(rq)
	}
	// The applier times out a read waiting for its index; this bounds the
	// wait for a read index too.
	timeout := time.NewTimer(n.cfg.ReadTimeout + time.Second)
	defer timeout.Stop()
	select {
	case <-ready:
	case r := <-refused:
		return nil, filestore.SnapshotMeta{}, &r
	case <-timeout.C:
		return nil, filestore.SnapshotMeta{}, &wire.Reply{Code: wire.CodeTimeout, Msg: "replica did not reach the requested index in time"}
	case <-st.stop:
		return nil, filestore.SnapshotMeta{}, nil
	case <-ctx.Done():
		return nil, filestore.SnapshotMeta{}, nil
	}
	a := &n.app
	a.mu.RLock()
	clone := a.fsm.Clone()
	meta := a.snapshotMeta(a.slot)
	a.mu.RUnlock()
	return clone, meta, nil
}

// chunkWriter cuts what WriteSnapshot writes into chunks and hands each to
// the next ask of its stream. Owned by the stream's goroutine.
type chunkWriter struct {
	ctx   context.Context
	st    *backupStream
	send  func(outFrame)
	chunk int
	buf   []byte // the chunk being filled; a new one once sent
	seq   uint64 // the last piece sent
	size  uint64 // bytes sent
	crc   uint32 // CRC-32C of the bytes sent
}

func (cw *chunkWriter) Write(p []byte) (int, error) {
	written := len(p)
	for len(p) > 0 {
		k := min(len(p), cw.chunk-len(cw.buf))
		cw.buf = append(cw.buf, p[:k]...)
		p = p[k:]
		if len(cw.buf) == cw.chunk {
			if err := cw.emit(false); err != nil {
				return 0, err
			}
		}
	}
	return written, nil
}

// nextAsk waits for the stream's next ask.
func (cw *chunkWriter) nextAsk() (backupAsk, error) {
	idle := time.NewTimer(backupIdle)
	defer idle.Stop()
	select {
	case a := <-cw.st.asks:
		return a, nil
	case <-cw.st.stop:
		return backupAsk{}, errBackupStopped
	case <-cw.ctx.Done():
		return backupAsk{}, errBackupStopped
	case <-idle.C:
		return backupAsk{}, fmt.Errorf("node: backup stream %d: no ask for %v", cw.st.id, backupIdle)
	}
}

// refuse answers the next ask with a refusal that ends the stream.
func (cw *chunkWriter) refuse(code wire.Code, msg string) error {
	a, err := cw.nextAsk()
	if err != nil {
		return err
	}
	sendChunk(cw.send, a.id, wire.BackupChunk{Code: code, Msg: msg})
	return nil
}

// emit waits for the next ask and answers it with the chunk filled so
// far, the last one if last.
func (cw *chunkWriter) emit(last bool) error {
	a, err := cw.nextAsk()
	if err != nil {
		return err
	}
	if a.ask.Seq != cw.seq+1 {
		sendChunk(cw.send, a.id, wire.BackupChunk{Code: wire.CodeBadRequest,
			Msg: fmt.Sprintf("asked for piece %d of backup stream %d, next is %d", a.ask.Seq, cw.st.id, cw.seq+1)})
		return fmt.Errorf("node: backup stream %d: ask for piece %d out of order", cw.st.id, a.ask.Seq)
	}
	cw.seq++
	cw.size += uint64(len(cw.buf))
	cw.crc = crc32.Update(cw.crc, wal.CRC32C, cw.buf)
	ch := wire.BackupChunk{Stream: cw.st.id, Seq: cw.seq, Data: cw.buf, CRC: wal.Checksum(cw.buf), Last: last}
	if last {
		ch.Size, ch.FileCRC = cw.size, cw.crc
	}
	sendChunk(cw.send, a.id, ch)
	cw.buf = make([]byte, 0, cw.chunk) // the one sent is the reply queue's now
	return nil
}

// Backup archive members: the snapshot file first, then the chunks
// directory and one member per chunk, named by its SHA-256 as in a
// replica's <dir>/chunks. Plain ustar, so `tar xf` unpacks it and
// `sha256sum chunks/*` checks it. cmd/synod reads it (backupfile.go).
const (
	BackupSnapshotMember = "snapshot"
	BackupChunksDir      = "chunks/"
)

// backupChunk is one distinct chunk a backup carries.
type backupChunk struct {
	sum  chunks.Sum
	size int
	key  string // a file that refers to it, for error messages
}

// backupChunks returns the distinct chunks the large files of m refer to,
// in key and manifest order.
func backupChunks(m *filestore.Machine) []backupChunk {
	var out []backupChunk
	seen := map[chunks.Sum]bool{}
	m.EachLarge(func(key string, text []byte) bool {
		mf, err := wire.ParseManifest(text)
		if err != nil {
			return true // the state machine parsed it when it applied it
		}
		for i, s := range mf.Chunks {
			if sum := chunks.Sum(s); !seen[sum] {
				seen[sum] = true
				out = append(out, backupChunk{sum: sum, size: mf.ChunkLen(i), key: key})
			}
		}
		return true
	})
	return out
}

// chunkFailure is a chunk a backup could not read here or from any peer:
// the stream ends with a refusal naming it.
type chunkFailure struct {
	chunk backupChunk
	err   error
}

func (f *chunkFailure) Error() string {
	return fmt.Sprintf("chunk %s of %s is on no reachable replica: %v", f.chunk.sum, f.chunk.key, f.err)
}

func (f *chunkFailure) Unwrap() error { return f.err }

// countWriter counts what is written to it.
type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// writeBackupArchive writes the backup of a state holding large files to
// w as a tar archive:
//
//	snapshot            the snapshot file, as WriteSnapshot writes it
//	chunks/             a directory
//	chunks/<sha256>     each chunk the snapshot's L lines name, once
//
// A tar header must give its member's size first: the snapshot is encoded
// once to count its bytes (the encoding is deterministic), then again into
// the archive. Chunks are read one at a time, from this replica's store or
// a peer's.
func (n *Node) writeBackupArchive(w io.Writer, clone *filestore.Machine, meta filestore.SnapshotMeta, files []backupChunk) error {
	var count countWriter
	if err := clone.WriteSnapshot(&count, meta); err != nil {
		return err
	}
	now := time.Now().Truncate(time.Second)
	tw := tar.NewWriter(w)
	hdr := func(name string, size int64) error {
		h := &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o644, ModTime: now, Format: tar.FormatUSTAR}
		if size < 0 {
			h.Typeflag, h.Size, h.Mode = tar.TypeDir, 0, 0o755
		}
		return tw.WriteHeader(h)
	}
	if err := hdr(BackupSnapshotMember, count.n); err != nil {
		return err
	}
	if err := clone.WriteSnapshot(tw, meta); err != nil {
		return err
	}
	if err := hdr(BackupChunksDir, -1); err != nil {
		return err
	}
	for _, f := range files {
		data, err := n.chunk(f.sum, f.size)
		if err != nil {
			return &chunkFailure{chunk: f, err: err}
		}
		if err := hdr(BackupChunksDir+f.sum.String(), int64(len(data))); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	return tw.Close()
}
