package target

// This file owns the file side of Line (bench.FileConn): a file above
// Line.PutFileAbove goes up with PUTFILE and comes back with GET RANGE, as
// synod cp moves it; one at or below goes as a value. It runs on the one
// client goroutine that owns the lineConn.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"synod/bench"
	"synod/wire/line"
)

// DefaultPutFileAbove is Line.PutFileAbove's default: the proxy's value
// limit (--max-value, 1 MiB) and synod cp's --chunked-above.
const DefaultPutFileAbove = 1 << 20

// rangePiece is the most one GET RANGE asks for: what a client takes by
// default (line.Options.MaxValue is 16 MiB) and the protocol allows.
const rangePiece = line.MaxRange

// errFileMismatch is a file read back whose bytes do not match the
// checksum its RANGE replies named.
var errFileMismatch = errors.New("target: file read back does not match its checksum")

// errFileChanged is a file whose ranges came from more than one version:
// overwritten while read, as a benchmark's reads may see. It counts as an
// error (kind "changed"), not retried.
var errFileChanged = errors.New("target: file changed while read")

// PutFile stores data as key: with PUTFILE if it is larger than the
// target's PutFileAbove, else with PUT.
func (c *lineConn) PutFile(ctx context.Context, key string, data []byte) error {
	if int64(len(data)) <= c.t.putFileAbove() {
		return c.Put(ctx, key, data)
	}
	if err := c.ready(ctx); err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	if _, err := c.c.PutFile(ctx, key, uint64(len(data)), hex.EncodeToString(sum[:]), bytes.NewReader(data)); err != nil {
		return c.fail(ctx, err)
	}
	return nil
}

// GetFile reads the whole file key, size bytes as PutFile wrote it: in
// ranges of up to line.MaxRange, each from one version, the whole checked
// against the file's SHA-256; or with GET if PutFile stored it as a value.
func (c *lineConn) GetFile(ctx context.Context, key string, size int64) error {
	if size <= c.t.putFileAbove() {
		return c.Get(ctx, key)
	}
	if err := c.ready(ctx); err != nil {
		return err
	}
	h := sha256.New()
	var version, total uint64
	var sum string
	for off := uint64(0); ; {
		rep, err := c.c.GetRange(ctx, key, off, rangePiece, 0)
		if errors.Is(err, line.ErrNotFound) {
			return nil
		}
		if err != nil {
			return c.fail(ctx, err)
		}
		if off == 0 {
			version, total, sum = rep.Version, rep.Len, rep.Sum
		} else if rep.Version != version {
			return &bench.OpError{Kind: "changed", Err: fmt.Errorf("%w: %s changed from version %d to %d while read", errFileChanged, key, version, rep.Version)}
		}
		h.Write(rep.Value)
		off += uint64(len(rep.Value))
		if off >= total || len(rep.Value) == 0 {
			break
		}
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return &bench.OpError{Kind: "mismatch", Err: fmt.Errorf("%w: %s version %d: sha256 %s, want %s", errFileMismatch, key, version, got, sum)}
	}
	return nil
}

// putFileAbove is t.PutFileAbove, or its default if unset (0); negative
// sends every file with PUTFILE.
func (t *Line) putFileAbove() int64 {
	switch {
	case t.PutFileAbove == 0:
		return DefaultPutFileAbove
	case t.PutFileAbove < 0:
		return 0
	}
	return t.PutFileAbove
}
