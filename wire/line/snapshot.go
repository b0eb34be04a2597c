package line

// This file owns the SNAPSHOT stream: an online backup of the whole store,
// a snapshot file (package filestore's format) sent in blocks; when the
// store holds large files, a tar archive of the snapshot file and their
// chunks (node/backup.go), which this file does not look into. The
// server's side is the Writer's Snapshot* methods, the client's
// Client.Snapshot. No goroutines of its own: a server writes the stream
// from its connection's writer, the client reads it on the caller's.
//
//	SNAPSHOT [<chunk-bytes>]
//	SNAPSHOT <index> <slot> <keys> <bytes> <digest> <replica>   the header
//	$<n>\r\n<n bytes>\r\n                                       one block per piece, n <= chunk-bytes
//	...
//	END <size> <crc32c>                                         the stream is whole
//
// The header says which state the backup holds: the command index and log
// slot it was taken at, the number of keys, the bytes of their values (the
// chunks of large files included), the
// state digest at that index (as a replica's STATUS reports it) and the
// replica that serves it. The blocks, in order, are the snapshot file;
// END gives its size and CRC-32C (Castagnoli, 8 hex digits). An
// "ERR <CODE> <message>" line may come instead of the header or of any
// block or END: the backup failed (UNAVAILABLE, BUSY, TIMEOUT are worth a
// new attempt), whatever was received is to be thrown away, and the
// connection is usable for the next request.

import (
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
	"sync"
	"time"
)

// Bounds of a SNAPSHOT stream's pieces (the request's <chunk-bytes>).
const (
	MinSnapshotChunk     = 4 << 10
	MaxSnapshotChunk     = 4 << 20
	DefaultSnapshotChunk = 1 << 20
)

// maxDigest bounds a header's digest: hex of a SHA-256 is 64 digits.
const maxDigest = 128

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// SnapshotHeader is the first line of a SNAPSHOT stream.
type SnapshotHeader struct {
	Index   uint64 // the command index the backup was taken at
	Slot    uint64 // and the log slot
	Keys    uint64 // files in the backup
	Bytes   uint64 // bytes of their values, the chunks of large files included
	Digest  string // the state digest at Index, hex
	Replica uint64 // the replica that serves it
}

// SnapshotInfo is what a whole SNAPSHOT stream said: its header, and the
// size and CRC-32C of the file its blocks made.
type SnapshotInfo struct {
	SnapshotHeader
	Size uint64
	CRC  uint32
}

// validDigest reports whether d can be a header's digest: 1 to maxDigest
// lower-case hex digits.
func validDigest(d string) bool {
	if d == "" || len(d) > maxDigest {
		return false
	}
	for i := range len(d) {
		if c := d[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// SnapshotBegin writes a SNAPSHOT stream's header. A digest that is not
// lower-case hex is written as "-".
func (w *Writer) SnapshotBegin(h SnapshotHeader) error {
	w.buf = append(w.buf, "SNAPSHOT "...)
	for _, v := range []uint64{h.Index, h.Slot, h.Keys, h.Bytes} {
		w.buf = strconv.AppendUint(w.buf, v, 10)
		w.buf = append(w.buf, ' ')
	}
	if validDigest(h.Digest) {
		w.buf = append(w.buf, h.Digest...)
	} else {
		w.buf = append(w.buf, '-')
	}
	w.buf = append(w.buf, ' ')
	w.buf = strconv.AppendUint(w.buf, h.Replica, 10)
	w.buf = append(w.buf, "\r\n"...)
	return w.writeBuf()
}

// SnapshotBlock writes one piece of a SNAPSHOT stream as a "$<n>" block.
func (w *Writer) SnapshotBlock(data []byte) error {
	w.buf = append(w.buf, '$')
	w.buf = strconv.AppendUint(w.buf, uint64(len(data)), 10)
	w.buf = append(w.buf, "\r\n"...)
	if err := w.writeBuf(); err != nil {
		return err
	}
	if err := w.write(data); err != nil {
		return err
	}
	return w.writeString("\r\n")
}

// SnapshotEnd ends a SNAPSHOT stream whose blocks held size bytes of
// CRC-32C crc.
func (w *Writer) SnapshotEnd(size uint64, crc uint32) error {
	w.buf = append(w.buf, "END "...)
	w.buf = strconv.AppendUint(w.buf, size, 10)
	w.buf = append(w.buf, ' ')
	w.buf = appendHex32(w.buf, crc)
	w.buf = append(w.buf, "\r\n"...)
	return w.writeBuf()
}

func appendHex32(b []byte, v uint32) []byte {
	const digits = "0123456789abcdef"
	for shift := 28; shift >= 0; shift -= 4 {
		b = append(b, digits[v>>uint(shift)&0xf])
	}
	return b
}

// parseHex32 parses exactly eight lower-case hex digits.
func parseHex32(b []byte) (uint32, bool) {
	if len(b) != 8 {
		return 0, false
	}
	v, err := strconv.ParseUint(string(b), 16, 32)
	if err != nil || string(appendHex32(nil, uint32(v))) != string(b) {
		return 0, false
	}
	return uint32(v), true
}

// parseSnapshotHeader parses the rest of a "SNAPSHOT ..." header line.
func parseSnapshotHeader(rest []byte) (SnapshotHeader, bool) {
	var f [7][]byte
	if fields(rest, f[:]) != 6 {
		return SnapshotHeader{}, false
	}
	var h SnapshotHeader
	for i, dst := range []*uint64{&h.Index, &h.Slot, &h.Keys, &h.Bytes} {
		v, ok := parseUint(f[i])
		if !ok {
			return SnapshotHeader{}, false
		}
		*dst = v
	}
	if d := string(f[4]); d != "-" {
		if !validDigest(d) {
			return SnapshotHeader{}, false
		}
		h.Digest = d
	}
	v, ok := parseUint(f[5])
	if !ok {
		return SnapshotHeader{}, false
	}
	h.Replica = v
	return h, true
}

// Snapshot asks the server for a backup (SNAPSHOT, with chunk bytes per
// piece; 0 leaves it to the server) and writes the file its stream carries
// to w as it arrives. progress, if not nil, is called after the header
// and after every piece with the bytes so far. On success the bytes
// written to w are the whole file: their size and CRC-32C are the ones END
// announced. On any error what reached w is to be thrown away. A
// *ServerError (the server's ERR, before or in the middle of the stream)
// leaves the connection usable; any other error, w's included, leaves it
// broken (the rest of the stream was not read). ctx bounds the whole
// backup.
func (c *Client) Snapshot(ctx context.Context, chunk uint64, w io.Writer, progress func(h SnapshotHeader, n uint64)) (SnapshotInfo, error) {
	c.callMu.Lock()
	defer c.callMu.Unlock()
	if err := c.broken(); err != nil {
		return SnapshotInfo{}, err
	}
	if c.Pending() > 0 {
		return SnapshotInfo{}, ErrPipelineBusy
	}
	if err := ctx.Err(); err != nil {
		return SnapshotInfo{}, fmt.Errorf("line: SNAPSHOT: %w", err)
	}
	deadline, _ := ctx.Deadline()
	if err := c.conn.SetDeadline(deadline); err != nil {
		return SnapshotInfo{}, c.fail(fmt.Errorf("line: set deadline: %w", err))
	}
	var (
		gmu  sync.Mutex
		done bool
	)
	stop := context.AfterFunc(ctx, func() {
		gmu.Lock()
		defer gmu.Unlock()
		if !done {
			_ = c.conn.SetDeadline(time.Unix(1, 0))
		}
	})
	info, err := c.snapshotTrip(Request{Cmd: CmdSnapshot, Chunk: chunk}, w, progress)
	gmu.Lock()
	done = true
	gmu.Unlock()
	stop()
	if err == nil || isServerError(err) {
		_ = c.conn.SetDeadline(time.Time{})
		return info, err
	}
	if cerr := ctx.Err(); cerr != nil {
		return SnapshotInfo{}, fmt.Errorf("line: SNAPSHOT: %w: %w", cerr, err)
	}
	return SnapshotInfo{}, err
}

func (c *Client) snapshotTrip(req Request, w io.Writer, progress func(SnapshotHeader, uint64)) (SnapshotInfo, error) {
	if err := c.Send(req); err != nil {
		return SnapshotInfo{}, err
	}
	if err := c.Flush(); err != nil {
		return SnapshotInfo{}, err
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if err := c.broken(); err != nil {
		return SnapshotInfo{}, err
	}
	if _, ok := c.pop(); !ok {
		return SnapshotInfo{}, ErrNothingPending
	}
	limit := req.Chunk
	if limit == 0 {
		limit = MaxSnapshotChunk
	}
	info, err := c.rr.snapshot(int(limit), w, progress)
	if err != nil && !isServerError(err) {
		return SnapshotInfo{}, c.fail(err)
	}
	return info, err
}

// snapshot reads a SNAPSHOT stream whose blocks are at most limit bytes,
// writing them to w. A *ServerError leaves the stream in sync; any other
// error means it is not.
func (rr *replyReader) snapshot(limit int, w io.Writer, progress func(SnapshotHeader, uint64)) (SnapshotInfo, error) {
	const cmd = CmdSnapshot
	l, err := rr.line(cmd)
	if err != nil {
		return SnapshotInfo{}, err
	}
	head, rest, _ := cut(l)
	switch string(head) {
	case "ERR":
		return SnapshotInfo{}, parseErrLine(cmd, rest)
	case "SNAPSHOT":
	default:
		return SnapshotInfo{}, badReply(cmd, "unexpected %.64q", l)
	}
	h, ok := parseSnapshotHeader(rest)
	if !ok {
		return SnapshotInfo{}, badReply(cmd, "malformed header %.64q", l)
	}
	info := SnapshotInfo{SnapshotHeader: h}
	if progress != nil {
		progress(h, 0)
	}
	var buf []byte
	for {
		l, err := rr.line(cmd)
		if err != nil {
			return SnapshotInfo{}, err
		}
		if len(l) > 0 && l[0] == '$' {
			n, ok := parseUint(l[1:])
			if !ok {
				return SnapshotInfo{}, badReply(cmd, "malformed block header %.64q", l)
			}
			if n > uint64(limit) {
				return SnapshotInfo{}, fmt.Errorf("line: reply to SNAPSHOT: block of %d bytes over %d: %w", n, limit, ErrTooLarge)
			}
			if uint64(cap(buf)) < n {
				buf = make([]byte, n)
			}
			buf = buf[:n]
			if _, err := io.ReadFull(rr.br, buf); err != nil {
				return SnapshotInfo{}, fmt.Errorf("line: reply to SNAPSHOT: read block: %w", unexpected(err))
			}
			ok, err := readEOL(rr.br)
			if err != nil {
				return SnapshotInfo{}, fmt.Errorf("line: reply to SNAPSHOT: %w", err)
			}
			if !ok {
				return SnapshotInfo{}, badReply(cmd, "block not followed by \\r\\n")
			}
			if _, err := w.Write(buf); err != nil {
				return SnapshotInfo{}, fmt.Errorf("line: SNAPSHOT: write the backup: %w", err)
			}
			info.Size += n
			info.CRC = crc32.Update(info.CRC, castagnoli, buf)
			if progress != nil {
				progress(h, info.Size)
			}
			continue
		}
		head, rest, _ := cut(l)
		switch string(head) {
		case "ERR":
			return SnapshotInfo{}, parseErrLine(cmd, rest)
		case "END":
			var f [3][]byte
			if fields(rest, f[:]) != 2 {
				return SnapshotInfo{}, badReply(cmd, "malformed end %.64q", l)
			}
			size, ok1 := parseUint(f[0])
			crc, ok2 := parseHex32(f[1])
			switch {
			case !ok1 || !ok2:
				return SnapshotInfo{}, badReply(cmd, "malformed end %.64q", l)
			case size != info.Size:
				return SnapshotInfo{}, badReply(cmd, "the stream held %d bytes, its end says %d", info.Size, size)
			case crc != info.CRC:
				return SnapshotInfo{}, badReply(cmd, "the stream's CRC-32C is %08x, its end says %08x", info.CRC, crc)
			}
			return info, nil
		}
		return SnapshotInfo{}, badReply(cmd, "unexpected %.64q", l)
	}
}
